package executor_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"golang.org/x/time/rate"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/datastore/fake"
	"github.com/lethe-dev/lethe/internal/engine"
	"github.com/lethe-dev/lethe/internal/executor"
)

// base is the cutoff of every job here.
var base = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

var cursorKey = []byte("0123456789abcdef0123456789abcdef")

// events is a store with collection events of n records: record i (key
// %05d) has user_id i%10 and an email, and the first expired are dated
// before base.
func events(n, expired int) *fake.Driver {
	d := fake.New()
	recs := make([]fake.Record, n)
	for i := range n {
		recs[i] = fake.Record{
			Key:    fmt.Sprintf("%05d", i+1),
			Time:   base.Add(time.Duration(i-expired) * time.Minute),
			Fields: map[string]string{"user_id": fmt.Sprint((i + 1) % 10), "email": fmt.Sprintf("user%d@example.com", i+1)},
		}
	}
	return d.Insert("events", recs...)
}

// eventsCollection is the driver's view of collection events.
var eventsCollection = datastore.Collection{Name: "events", IdentityFields: map[string]string{"user_id": "user_id", "email": "email"}}

// deleteExpired is a step deleting the expired events, batchSize records a batch.
func deleteExpired(batchSize int) engine.Step {
	cutoff := base
	return engine.Step{Op: datastore.Operation{Collection: eventsCollection, Delete: true, Cutoff: &cutoff, BatchSize: batchSize}}
}

// jobFor is a PurgeJob with one spec operation per step.
func jobFor(mode retentionv1.Mode, steps ...engine.Step) *retentionv1.PurgeJob {
	job := &retentionv1.PurgeJob{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "job", UID: "job-uid", Annotations: map[string]string{}},
		Spec:       retentionv1.PurgeJobSpec{DatasetRef: retentionv1.LocalObjectReference{Name: "app"}, Mode: mode},
	}
	for _, s := range steps {
		action := retentionv1.ActionAnonymize
		if s.Op.Delete {
			action = retentionv1.ActionDelete
		}
		job.Spec.Operations = append(job.Spec.Operations, retentionv1.Operation{
			Collection: retentionv1.Identifier(s.Op.Collection.Name), Action: action, ByAge: s.Op.Cutoff != nil, BySubject: s.Op.Subjects != nil})
	}
	return job
}

// memSeals is a SealStore in memory.
type memSeals struct {
	data    []byte
	saves   int
	saveErr error
}

func (m *memSeals) Save(_ context.Context, data []byte) error {
	if m.saveErr != nil {
		return m.saveErr
	}
	m.saves++
	m.data = data
	return nil
}

func (m *memSeals) Load(context.Context) ([]byte, error) {
	if m.data == nil {
		return nil, errors.New("no sealed keys")
	}
	return m.data, nil
}

// harness drives a job the way the PurgeJob controller does: a new Run per
// reconcile, the status as last checkpointed carried over, and Started
// turned into Running.
type harness struct {
	t      *testing.T
	job    *retentionv1.PurgeJob
	steps  []engine.Step
	driver datastore.Driver
	seals  *memSeals
	// written is the status as last checkpointed; checkpoints counts them.
	written     *retentionv1.PurgeJobStatus
	checkpoints int
	// failCheckpoint, if positive, fails that checkpoint (1-based);
	// failCheckpoints, if set, is asked before every checkpoint (1-based)
	// whether it fails.
	failCheckpoint  int
	failCheckpoints func(n int) bool
	// ledger is the process's Ledger, vouched after every checkpoint;
	// crash replaces it. interval is the Run's CheckpointInterval;
	// recounts lists what OnRecount was told.
	ledger   *executor.Ledger
	interval time.Duration
	recounts []int64
	// verified is what the last Completed slice verified.
	verified *executor.Verification
	// now is the clock; tick advances it at every reading.
	now  time.Time
	tick time.Duration
	// sliceTime and maxBatches bound a slice.
	sliceTime  time.Duration
	maxBatches int
	// progress lists what each slice returned.
	progress []executor.Progress
	// limiter throttles the batches; sleeps lists the throttle's waits,
	// each advancing the clock, and sleepErr, if set, ends every wait.
	limiter  *rate.Limiter
	sleeps   []time.Duration
	sleepErr error
	// gates are the Run's gates; pauses lists what OnPause was told and
	// batches counts OnBatch calls.
	gates   []executor.Gate
	pauses  []*executor.Pause
	batches int
}

// sleep is the Run's Sleep: it advances the clock by d.
func (h *harness) sleep(_ context.Context, d time.Duration) error {
	h.sleeps = append(h.sleeps, d)
	if h.sleepErr != nil {
		return h.sleepErr
	}
	h.now = h.now.Add(d)
	return nil
}

func newHarness(t *testing.T, d datastore.Driver, job *retentionv1.PurgeJob, steps ...engine.Step) *harness {
	return &harness{t: t, job: job, steps: steps, driver: d, seals: &memSeals{}, now: base.Add(time.Hour), ledger: &executor.Ledger{}}
}

// run is one Run over the harness's job.
func (h *harness) run() *executor.Run {
	return &executor.Run{
		Job: h.job, Steps: h.steps, Driver: h.driver, StoreType: retentionv1.DataStorePostgreSQL, Seals: h.seals,
		Checkpoint: func(context.Context) error {
			h.checkpoints++
			if h.checkpoints == h.failCheckpoint || h.failCheckpoints != nil && h.failCheckpoints(h.checkpoints) {
				return errors.New("the API server refused the status")
			}
			h.written = h.job.Status.DeepCopy()
			h.ledger.Vouch(h.job)
			return nil
		},
		CheckpointInterval: h.interval, Ledger: h.ledger,
		OnRecount: func(n int64) { h.recounts = append(h.recounts, n) },
		Clock: func() time.Time {
			h.now = h.now.Add(h.tick)
			return h.now
		},
		CursorKey: cursorKey, SliceDuration: h.sliceTime, MaxBatchesPerSlice: h.maxBatches,
		Limiter: h.limiter, Sleep: h.sleep,
		Gates:   h.gates,
		OnPause: func(p *executor.Pause) { h.pauses = append(h.pauses, p) },
		OnBatch: func() { h.batches++ },
	}
}

// slice runs one slice; after Started it marks the job Running and writes
// its status, as the controller does.
func (h *harness) slice(ctx context.Context) (executor.Progress, error) {
	r := h.run()
	p, err := r.Slice(ctx)
	if err == nil {
		h.progress = append(h.progress, p)
	}
	if p == executor.Completed {
		h.verified = r.Verified
	}
	// The controller writes the status of a slice that failed (a stall,
	// a transient error) but not of an aborted one.
	var abort *executor.AbortError
	if err != nil && !errors.As(err, &abort) && h.job.Status.StartTime != nil {
		h.written = h.job.Status.DeepCopy()
		h.ledger.Vouch(h.job)
	}
	if p == executor.Started {
		h.job.Status.Phase = retentionv1.PurgeJobRunning
		h.written = h.job.Status.DeepCopy()
		h.ledger.Vouch(h.job)
	}
	return p, err
}

// drive runs slices until the job is done or a slice fails (at most 100).
func (h *harness) drive(ctx context.Context) error {
	for range 100 {
		p, err := h.slice(ctx)
		if err != nil || p == executor.Completed || p == executor.DryRunCompleted {
			return err
		}
	}
	h.t.Fatal("the job did not finish in 100 slices")
	return nil
}

// crash is a new manager process: the ledger is empty, and the status is
// the last checkpoint (restart).
func (h *harness) crash() {
	h.ledger = &executor.Ledger{}
	h.restart()
}

// restart forgets the status in memory and continues from the last
// checkpoint, as a new reconcile reads it.
func (h *harness) restart() {
	if h.written == nil {
		h.job.Status = retentionv1.PurgeJobStatus{}
		return
	}
	h.job.Status = *h.written.DeepCopy()
}

func left(d *fake.Driver) int { return len(d.Records("events")) }

// wantVerified checks what the completed job's verification found.
func wantVerified(t *testing.T, h *harness, exact bool) {
	t.Helper()
	if h.verified == nil || h.verified.Exact != exact {
		t.Errorf("verification %+v, want exact %v", h.verified, exact)
	}
}
