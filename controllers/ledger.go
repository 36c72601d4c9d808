package controllers

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Ledger appends erasure-ledger lines to ConfigMaps with group commit: the
// appends that arrive while a write is in flight go together in the next
// one, so a burst of completed requests costs a few API writes instead of
// one contended write each. Append returns once its line is stored.
//
// The ledger of a namespace is sharded by day (UTC) and by the first hex
// digit of the subject digest, named lethe-erasure-ledger-<yyyymmdd>-<digit>;
// each key is a request name and each value a JSON line of keyed digests
// (about 350 bytes). Daily shards keep every write small and the ledger far
// from the 1 MiB limit of a ConfigMap: 16 shards a day hold about 45,000
// erasures per namespace and day.
type Ledger struct {
	Client client.Client
	Reader client.Reader

	in chan ledgerAppend
}

type ledgerAppend struct {
	namespace, shard, key, line string
	done                        chan error
}

// NewLedger returns a ledger; Start must run for appends to complete.
func NewLedger(c client.Client, r client.Reader) *Ledger {
	return &Ledger{Client: c, Reader: r, in: make(chan ledgerAppend, 4096)}
}

// ShardName is the ConfigMap holding a subject's ledger line.
func ShardName(subjectDigest string, at time.Time) string {
	d := strings.TrimPrefix(subjectDigest, "hmac-sha256:")
	digit := "0"
	if d != "" {
		digit = d[:1]
	}
	return fmt.Sprintf("%s-%s-%s", LedgerConfigMap, at.UTC().Format("20060102"), digit)
}

// Append stores one line and waits until it is written.
func (l *Ledger) Append(ctx context.Context, namespace, shard, key, line string) error {
	a := ledgerAppend{namespace: namespace, shard: shard, key: key, line: line, done: make(chan error, 1)}
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
func (l *Ledger) Start(ctx context.Context) error {
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
			k := types.NamespacedName{Namespace: a.namespace, Name: a.shard}
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
func (l *Ledger) NeedLeaderElection() bool { return true }

func (l *Ledger) write(ctx context.Context, key types.NamespacedName, as []ledgerAppend) error {
	return retry.OnError(retry.DefaultRetry, func(err error) bool { return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) }, func() error {
		var cm corev1.ConfigMap
		err := l.Reader.Get(ctx, key, &cm)
		if apierrors.IsNotFound(err) {
			cm = corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name,
				Labels: map[string]string{"app.kubernetes.io/managed-by": "lethe", "retention.lethe.dev/ledger": "true"}}, Data: map[string]string{}}
			for _, a := range as {
				cm.Data[a.key] = a.line
			}
			return l.Client.Create(ctx, &cm)
		}
		if err != nil {
			return err
		}
		if cm.Data == nil {
			cm.Data = map[string]string{}
		}
		for _, a := range as {
			cm.Data[a.key] = a.line
		}
		return l.Client.Update(ctx, &cm)
	})
}
