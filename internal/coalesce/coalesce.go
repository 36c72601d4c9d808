// Package coalesce erases many DeletionRequests with one PurgeJob. The
// Coalescer gathers requests that passed their gates and, once per window,
// erases each group of them with one PurgeJob: one set-based statement per
// collection and batch (`= ANY($1)`) instead of one per subject. A group
// shares namespace, Dataset, the planned operations and mode, so the same
// statements are right for every member.
//
// Each PurgeJob names its members in an annotation, so a restarted manager
// finds the jobs of every queued request and never erases a subject twice;
// a member is queued again only when the manager stopped between creating
// the PurgeJob and its subjects Secret (nothing ran yet; the request deletes
// that job once it stalls without its Secret, see Orphaned).
//
// After a job succeeds, its members are verified together: one count per
// collection over the union of their identities. Only when that finds
// something left is each member counted on its own, to name the failure.
package coalesce

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/owned"
	"github.com/lethe-dev/lethe/internal/signature"
)

// maxMemberBytes bounds the member names of one PurgeJob, so the annotation
// stays far below the API server's 256 KiB limit for all annotations.
const maxMemberBytes = 64 << 10

// Coalescer gathers DeletionRequests that passed their gates and erases
// each group of them with one PurgeJob (see the package doc). It runs in the
// elected leader (manager.Runnable).
type Coalescer struct {
	client client.Client
	key    []byte // signs the PurgeJobs (internal/signature)

	// Window is how long requests gather before a PurgeJob starts (default 200ms).
	Window time.Duration
	// MaxSubjects bounds the requests of one PurgeJob (default 500).
	MaxSubjects int

	mu       sync.Mutex
	groups   map[string]*erasureGroup
	assigned map[types.NamespacedName]map[string]string // request → Dataset → PurgeJob, until it completes
	jobs     map[string]*jobMembers                     // namespace/PurgeJob → its members, until they complete
}

// jobMembers is what the coalescer remembers of a PurgeJob it started: the
// union of its members' identities and, once computed, the verification
// counts over that union.
type jobMembers struct {
	group     string // the erasureGroup key
	union     map[string][]string
	remaining map[types.NamespacedName]bool

	mu       sync.Mutex // held while verifying, so members wait for one count
	verified bool
	left     []int64 // per operation, over the union
}

type erasureGroup struct {
	key                string    // groupKey
	since              time.Time // when its first member was added
	namespace, dataset string
	mode               retentionv1.Mode
	ops                []retentionv1.Operation
	members            map[types.NamespacedName]map[string][]string
	order              []types.NamespacedName
}

// New returns an empty coalescer that creates PurgeJobs and their subjects
// Secrets with c and signs them with key (the manager's digest key); add it
// to the manager.
func New(c client.Client, key []byte) *Coalescer {
	return &Coalescer{client: c, key: key, groups: map[string]*erasureGroup{},
		assigned: map[types.NamespacedName]map[string]string{}, jobs: map[string]*jobMembers{}}
}

// Assigned returns the PurgeJobs started for a request, one per Dataset.
func (c *Coalescer) Assigned(req types.NamespacedName) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var jobs []string
	for _, job := range c.assigned[req] {
		if job != "" { // "" is in flight
			jobs = append(jobs, job)
		}
	}
	slices.Sort(jobs)
	return jobs
}

// Done forgets a finished request, and a PurgeJob once all its members are done.
func (c *Coalescer) Done(req types.NamespacedName) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.assigned, req)
	for key, j := range c.jobs {
		if strings.HasPrefix(key, req.Namespace+"/") {
			delete(j.remaining, req)
			if len(j.remaining) == 0 {
				delete(c.jobs, key)
			}
		}
	}
}

// Verified reports, for a succeeded PurgeJob this coalescer started, how
// many records per operation still match any of its members' identities;
// verify counts them, once per job, whichever member asks first. ok is false
// for a job it does not know (started before a restart).
func (c *Coalescer) Verified(namespace, job string, verify func(union map[string][]string) ([]int64, error)) (left []int64, ok bool, err error) {
	c.mu.Lock()
	j := c.jobs[namespace+"/"+job]
	c.mu.Unlock()
	if j == nil {
		return nil, false, nil
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if !j.verified {
		if j.left, err = verify(j.union); err != nil {
			return nil, true, err // a later member tries again
		}
		j.verified = true
	}
	return j.left, true, nil
}

// Add queues a request's erasure of one Dataset. Adding again is harmless.
func (c *Coalescer) Add(req types.NamespacedName, dataset string, mode retentionv1.Mode, ops []retentionv1.Operation, identities map[string][]string) {
	key := groupKey(req.Namespace, dataset, mode, ops, identities)
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.assigned[req][dataset]; ok {
		return
	}
	g := c.groups[key]
	if g == nil {
		g = &erasureGroup{key: key, since: time.Now(), namespace: req.Namespace, dataset: dataset, mode: mode, ops: ops, members: map[types.NamespacedName]map[string][]string{}}
		c.groups[key] = g
	}
	if _, ok := g.members[req]; !ok {
		g.order = append(g.order, req)
	}
	g.members[req] = identities
}

// groupKey: requests share a PurgeJob only when its statements are right for
// all of them — same Dataset, mode, operations and identity types (the
// types decide how each collection reaches the subject).
func groupKey(ns, dataset string, mode retentionv1.Mode, ops []retentionv1.Operation, identities map[string][]string) string {
	var types []string
	for t := range identities {
		types = append(types, t)
	}
	slices.Sort(types)
	var b strings.Builder
	fmt.Fprintf(&b, "%s/%s/%s/%s", ns, dataset, mode, strings.Join(types, ","))
	for _, op := range ops {
		fmt.Fprintf(&b, "|%s:%s", op.Collection, op.Action)
		for _, f := range op.Fields {
			fmt.Fprintf(&b, ":%s=%s", f.Name, f.Strategy)
		}
	}
	return b.String()
}

// Start flushes the groups once per window until ctx ends (manager.Runnable).
func (c *Coalescer) Start(ctx context.Context) error {
	window := c.Window
	if window <= 0 {
		window = 200 * time.Millisecond
	}
	t := time.NewTicker(window)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			c.flush(ctx)
		}
	}
}

// NeedLeaderElection: only the leader starts PurgeJobs.
func (c *Coalescer) NeedLeaderElection() bool { return true }

func (c *Coalescer) flush(ctx context.Context) {
	c.mu.Lock()
	groups := map[string]*erasureGroup{}
	for key, g := range c.groups {
		// While this group's previous PurgeJob still runs, keep gathering
		// (up to a second): under a burst, jobs grow instead of queueing up.
		if c.busy(key) && time.Since(g.since) < maxGather {
			continue
		}
		groups[key] = g
		delete(c.groups, key)
	}
	// Mark members in flight, so that an Add while their PurgeJob is being
	// created does not queue them a second time.
	for _, g := range groups {
		for _, m := range g.order {
			if c.assigned[m] == nil {
				c.assigned[m] = map[string]string{}
			}
			c.assigned[m][g.dataset] = ""
		}
	}
	c.mu.Unlock()
	for _, g := range groups {
		for _, members := range c.split(g.order) {
			name, err := c.start(ctx, g, members)
			c.mu.Lock()
			for _, m := range members {
				if err != nil {
					// Try again at the next window.
					delete(c.assigned[m], g.dataset)
					c.requeue(g, m)
					continue
				}
				if c.assigned[m] != nil { // nil: finished meanwhile (e.g. failed)
					c.assigned[m][g.dataset] = name
				}
			}
			c.mu.Unlock()
			if err != nil {
				log.FromContext(ctx).Error(err, "starting a coalesced erasure; retrying", "dataset", g.dataset, "requests", len(members))
			}
		}
	}
}

// maxGather bounds how long a group gathers while its previous job runs.
const maxGather = time.Second

// busy reports whether a PurgeJob of this group still has members erasing
// (c.mu held).
func (c *Coalescer) busy(key string) bool {
	for _, j := range c.jobs {
		if j.group == key && len(j.remaining) > 0 {
			return true
		}
	}
	return false
}

// split cuts a group's members into PurgeJobs of at most MaxSubjects
// requests and maxMemberBytes of names.
func (c *Coalescer) split(order []types.NamespacedName) [][]types.NamespacedName {
	limit := c.MaxSubjects
	if limit <= 0 {
		limit = 500
	}
	var out [][]types.NamespacedName
	start, size := 0, 0
	for i, m := range order {
		if i > start && (i-start >= limit || size+len(m.Name)+1 > maxMemberBytes) {
			out = append(out, order[start:i])
			start, size = i, 0
		}
		size += len(m.Name) + 1
	}
	if start < len(order) {
		out = append(out, order[start:])
	}
	return out
}

// requeue puts a member back (c.mu held).
func (c *Coalescer) requeue(g *erasureGroup, m types.NamespacedName) {
	key := groupKey(g.namespace, g.dataset, g.mode, g.ops, g.members[m])
	ng := c.groups[key]
	if ng == nil {
		ng = &erasureGroup{key: key, since: time.Now(), namespace: g.namespace, dataset: g.dataset, mode: g.mode, ops: g.ops, members: map[types.NamespacedName]map[string][]string{}}
		c.groups[key] = ng
	}
	if _, ok := ng.members[m]; !ok {
		ng.order = append(ng.order, m)
	}
	ng.members[m] = g.members[m]
}

// start creates the PurgeJob of some members, then its subjects Secret.
func (c *Coalescer) start(ctx context.Context, g *erasureGroup, members []types.NamespacedName) (string, error) {
	union := map[string][]string{}
	names := make([]string, 0, len(members))
	for _, m := range members {
		names = append(names, m.Name)
		for t, vs := range g.members[m] {
			union[t] = append(union[t], vs...)
		}
	}
	slices.Sort(names)
	sum := sha256.Sum256([]byte(strings.Join(names, "\x00") + time.Now().String()))
	name := fmt.Sprintf("erase-%s-%s", truncate(g.dataset, 40), hex.EncodeToString(sum[:5]))
	labels := map[string]string{retentionv1.LabelCoalesced: "true"}

	// The PurgeJob first, signed over the subjects it will read, then its
	// subjects Secret, owned by the job from its creation: no Secret of
	// identities ever exists without an owner. The PurgeJob controller
	// waits for a subjects Secret that does not exist yet
	// (subjectsSecretGrace in controllers/purgejob_controller.go).
	data := map[string][]byte{}
	for t, vs := range union {
		slices.Sort(vs)
		data[t] = []byte(strings.Join(slices.Compact(vs), "\n"))
	}
	job := &retentionv1.PurgeJob{
		ObjectMeta: metav1.ObjectMeta{Namespace: g.namespace, Name: name, Labels: labels,
			Annotations: map[string]string{retentionv1.AnnotationDeletionRequests: strings.Join(names, ",")}},
		Spec: retentionv1.PurgeJobSpec{
			DatasetRef:        retentionv1.LocalObjectReference{Name: retentionv1.ObjectName(g.dataset)},
			Mode:              g.mode,
			SubjectsSecretRef: &retentionv1.SecretReference{Name: name},
			Operations:        g.ops,
		},
	}
	if err := signature.Sign(c.key, job, data); err != nil {
		return "", fmt.Errorf("signing PurgeJob: %w", err)
	}
	if err := c.client.Create(ctx, job); err != nil {
		return "", fmt.Errorf("creating PurgeJob: %w", err)
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: g.namespace, Name: name,
		Labels:          map[string]string{retentionv1.LabelCoalesced: "true", retentionv1.LabelSecretConsent: "true"},
		OwnerReferences: []metav1.OwnerReference{owned.Reference(job, "PurgeJob")}}, Data: data}
	if err := c.client.Create(ctx, secret); err != nil {
		// Nothing ran: the job waits for its Secret. Remove it, and its
		// members are queued again.
		if derr := c.client.Delete(ctx, job, client.Preconditions{UID: &job.UID}); client.IgnoreNotFound(derr) != nil {
			log.FromContext(ctx).Error(derr, "deleting a PurgeJob whose subjects Secret could not be created", "purgeJob", name)
		}
		return "", fmt.Errorf("creating subjects Secret: %w", err)
	}
	jm := &jobMembers{group: g.key, union: union, remaining: map[types.NamespacedName]bool{}}
	for _, m := range members {
		jm.remaining[m] = true
	}
	c.mu.Lock()
	c.jobs[g.namespace+"/"+name] = jm
	c.mu.Unlock()
	return name, nil
}

// Forget drops a PurgeJob that was deleted before it ran (its subjects
// Secret was never created): its members are no longer assigned to it, so
// they can be queued again.
func (c *Coalescer) Forget(namespace, job string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.jobs, namespace+"/"+job)
	for req, byDataset := range c.assigned {
		if req.Namespace != namespace {
			continue
		}
		for ds, name := range byDataset {
			if name == job {
				delete(byDataset, ds)
			}
		}
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// Orphaned reports a coalesced PurgeJob that stalled before it started
// because its subjects Secret was never created (the manager stopped
// between creating the job and the Secret): nothing ran, so its requests are
// queued again instead of failing.
func Orphaned(job *retentionv1.PurgeJob) bool {
	if job.Labels[retentionv1.LabelCoalesced] != "true" || job.Status.Phase != retentionv1.PurgeJobStalled || job.Status.StartTime != nil {
		return false
	}
	c := meta.FindStatusCondition(job.Status.Conditions, retentionv1.ConditionStalled)
	return c != nil && c.Reason == retentionv1.ReasonSecretNotFound
}
