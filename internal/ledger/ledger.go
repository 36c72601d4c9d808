// Package ledger keeps the erasure ledger: for each completed erasure, one
// line of keyed digests (the request, the subject, each identity erased and
// the receipt's SHA-256) that outlives the DeletionRequest and its
// ttlSecondsAfterFinished, so a restored backup can be checked against it.
//
// The ledger of a namespace is kept per day (UTC) in ConfigMaps named
// lethe-erasure-ledger-<yyyymmdd>-<n>, labelled retention.lethe.dev/ledger;
// each key is a request name and each value a JSON line (about 370 bytes). A
// shard is filled to maxShardBytes and the next one (n+1) is started.
//
// Appends go through one Writer with group commit: the appends that arrive
// while a write is in flight go together in the next one, so a burst of
// completed requests costs one API write per namespace instead of one
// contended write each.
package ledger

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

// Writer appends ledger lines to the day's shard with group commit (see the
// package doc). Append returns once its line is stored. It runs in the
// elected leader (manager.Runnable).
type Writer struct {
	Client client.Client
	Reader client.Reader

	in chan ledgerAppend
	// maxShard is how full a shard gets before the next is started.
	maxShard int
	// last holds each shard as this writer last stored it (only the Start
	// goroutine touches it), so an append needs no read first; a conflict
	// (another writer, an edit) reads it again.
	last map[types.NamespacedName]*corev1.ConfigMap
}

type ledgerAppend struct {
	namespace, day, key, line string
	done                      chan error
}

// maxShardBytes is how full a ledger ConfigMap gets before the next is
// started: about 370 lines. Every append rewrites its whole shard (the API
// server decodes it and etcd keeps a revision of all of it until
// compaction), so the shard size bounds what one append costs: at most
// 128 KiB, where 768 KiB shards let a busy day's appends grow six times
// larger. Smaller shards only add ConfigMaps.
const maxShardBytes = 128 << 10

// NewWriter returns a writer; Start must run for appends to complete. r
// lists and reads the ledger's ConfigMaps after a restart or a conflict.
func NewWriter(c client.Client, r client.Reader) *Writer {
	return &Writer{Client: c, Reader: r, in: make(chan ledgerAppend, 4096), maxShard: maxShardBytes, last: map[types.NamespacedName]*corev1.ConfigMap{}}
}

// Day is the ledger day of a completion time.
func Day(at time.Time) string { return at.UTC().Format("20060102") }

func shardName(day string, n int) string {
	return fmt.Sprintf("%s-%s-%d", retentionv1.LedgerConfigMap, day, n)
}

// Line finds the ledger line of a request in its namespace ("" when there
// is none): the check a restored backup is compared against.
func Line(ctx context.Context, r client.Reader, namespace, request string) (string, error) {
	var list corev1.ConfigMapList
	if err := r.List(ctx, &list, client.InNamespace(namespace), client.MatchingLabels{retentionv1.LabelLedger: "true"}); err != nil {
		return "", err
	}
	for _, cm := range list.Items {
		if line, ok := cm.Data[request]; ok {
			return line, nil
		}
	}
	return "", nil
}

// Append stores one line and waits until it is written.
func (l *Writer) Append(ctx context.Context, namespace, day, key, line string) error {
	a := ledgerAppend{namespace: namespace, day: day, key: key, line: line, done: make(chan error, 1)}
	select {
	case l.in <- a:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-a.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Start writes batches until ctx ends (manager.Runnable).
func (l *Writer) Start(ctx context.Context) error {
	for {
		var batch []ledgerAppend
		select {
		case <-ctx.Done():
			return nil
		case a := <-l.in:
			batch = append(batch, a)
		}
	drain:
		for len(batch) < 1000 {
			select {
			case a := <-l.in:
				batch = append(batch, a)
			default:
				break drain
			}
		}
		groups := map[types.NamespacedName][]ledgerAppend{}
		for _, a := range batch {
			k := types.NamespacedName{Namespace: a.namespace, Name: a.day}
			groups[k] = append(groups[k], a)
		}
		for k, as := range groups {
			err := l.write(ctx, k, as)
			for _, a := range as {
				a.done <- err
			}
		}
	}
}

// NeedLeaderElection: only the leader completes requests.
func (l *Writer) NeedLeaderElection() bool { return true }

// write appends lines to a namespace's ledger of one day (key.Name is the day).
func (l *Writer) write(ctx context.Context, key types.NamespacedName, as []ledgerAppend) error {
	size := 0
	for _, a := range as {
		size += len(a.key) + len(a.line)
	}
	return retry.OnError(retry.DefaultRetry, func(err error) bool { return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) }, func() error {
		cm, err := l.shard(ctx, key, size)
		if err != nil {
			return err
		}
		for _, a := range as {
			cm.Data[a.key] = a.line
		}
		if cm.ResourceVersion == "" {
			err = l.Client.Create(ctx, cm)
		} else {
			err = l.Client.Update(ctx, cm)
		}
		if err != nil {
			delete(l.last, key) // find the current shard again on the retry
			return err
		}
		l.remember(key, cm)
		return nil
	})
}

// remember keeps the current shard of a namespace and day for the next
// append, for at most 32 namespaces and days.
func (l *Writer) remember(key types.NamespacedName, cm *corev1.ConfigMap) {
	if _, ok := l.last[key]; !ok && len(l.last) >= 32 {
		clear(l.last)
	}
	l.last[key] = cm
}

// shard returns a copy of the ConfigMap to append `size` bytes to: the
// day's current shard, or the next one when it is full. Without a
// remembered shard it finds the day's last one by listing the ledger's
// names only (one call however many shards a day has), then reads it.
func (l *Writer) shard(ctx context.Context, key types.NamespacedName, size int) (*corev1.ConfigMap, error) {
	cm, ok := l.last[key]
	if !ok {
		var err error
		if cm, err = l.lastShard(ctx, key); err != nil {
			return nil, err
		}
	}
	if cm != nil && shardBytes(cm)+size <= l.maxShard {
		cm = cm.DeepCopy()
		if cm.Data == nil {
			cm.Data = map[string]string{}
		}
		return cm, nil
	}
	n := 0
	if cm != nil {
		n = shardIndex(cm.Name) + 1
	}
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: shardName(key.Name, n),
		Labels: map[string]string{"app.kubernetes.io/managed-by": "lethe", retentionv1.LabelLedger: "true"}}, Data: map[string]string{}}, nil
}

// lastShard reads the highest-numbered shard of a namespace's day (key.Name
// is the day); nil when the day has none yet.
func (l *Writer) lastShard(ctx context.Context, key types.NamespacedName) (*corev1.ConfigMap, error) {
	var names metav1.PartialObjectMetadataList
	names.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("ConfigMapList"))
	if err := l.Reader.List(ctx, &names, client.InNamespace(key.Namespace), client.MatchingLabels{retentionv1.LabelLedger: "true"}); err != nil {
		return nil, err
	}
	prefix, last := fmt.Sprintf("%s-%s-", retentionv1.LedgerConfigMap, key.Name), -1
	for _, m := range names.Items {
		if strings.HasPrefix(m.Name, prefix) && shardIndex(m.Name) > last {
			last = shardIndex(m.Name)
		}
	}
	if last < 0 {
		return nil, nil
	}
	cm := &corev1.ConfigMap{}
	if err := l.Reader.Get(ctx, types.NamespacedName{Namespace: key.Namespace, Name: shardName(key.Name, last)}, cm); err != nil {
		return nil, err
	}
	return cm, nil
}

func shardBytes(cm *corev1.ConfigMap) int {
	size := 0
	for k, v := range cm.Data {
		size += len(k) + len(v)
	}
	return size
}

func shardIndex(name string) int {
	n, _ := strconv.Atoi(name[strings.LastIndex(name, "-")+1:])
	return n
}

// Entries reads every line of a namespace's ledger, in shard and key order.
// A line that cannot be read is counted in unreadable, not returned.
func Entries(ctx context.Context, r client.Reader, namespace string) (entries []Entry, unreadable int, err error) {
	var list corev1.ConfigMapList
	if err := r.List(ctx, &list, client.InNamespace(namespace), client.MatchingLabels{retentionv1.LabelLedger: "true"}); err != nil {
		return nil, 0, err
	}
	slices.SortFunc(list.Items, func(a, b corev1.ConfigMap) int { return strings.Compare(a.Name, b.Name) })
	for _, cm := range list.Items {
		for _, k := range slices.Sorted(maps.Keys(cm.Data)) {
			e, err := ParseLine(cm.Data[k])
			if err != nil || e.Request != k {
				unreadable++
				continue
			}
			entries = append(entries, e)
		}
	}
	return entries, unreadable, nil
}
