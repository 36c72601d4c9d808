package erasure

import (
	"context"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

// apiFloor measures what the API server alone can absorb: for each of n
// requests, the writes no implementation of the issue can avoid (the
// DeletionRequest's create, a status write showing the plan before acting
// and a status write with the receipt), with the very statuses Lethe wrote
// for `done` (a request it completed), from `workers` clients at once, while
// the same watch as burst() waits for every request to show Completed. No
// manager runs and no store is touched, so the rate is a ceiling for any
// implementation on this machine; Lethe's req/s divided by it says how much
// of the control plane's capacity Lethe's own work (store queries, events,
// PurgeJobs, the ledger, its informers) costs.
func apiFloor(b *testing.B, ns string, n, workers int, done *retentionv1.DeletionRequest) float64 {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	completed := done.Status
	queued := *done.Status.DeepCopy()
	queued.Phase, queued.Receipt, queued.CompletionTime = retentionv1.RequestQueued, nil, nil
	meta.RemoveStatusCondition(&queued.Conditions, retentionv1.ConditionReady)
	meta.SetStatusCondition(&queued.Conditions, metav1.Condition{Type: retentionv1.ConditionReconciling, Status: metav1.ConditionTrue,
		Reason: "Queued", Message: "Queued to be erased with other requests in one set-based PurgeJob"})

	w := watchRequests(b, ctx, ns)
	cpuBefore := cpuByProcess()
	start := time.Now()
	next := make(chan int, n)
	for i := 1; i <= n; i++ {
		next <- i
	}
	close(next)
	var wg sync.WaitGroup
	var failed error
	var once sync.Once
	fail := func(err error) { once.Do(func() { failed = err; cancel() }) }
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				dr := request(ns, i)
				if err := env.Client.Create(ctx, dr); err != nil {
					fail(err)
					return
				}
				for _, s := range []retentionv1.DeletionRequestStatus{queued, completed} {
					before := dr.DeepCopy()
					dr.Status = *s.DeepCopy()
					if err := env.Client.Status().Patch(ctx, dr, client.MergeFrom(before)); err != nil {
						fail(err)
						return
					}
				}
			}
		}()
	}
	seen := map[string]bool{}
	for len(seen) < n {
		dr, ok := w.next()
		if !ok {
			wg.Wait()
			b.Fatalf("API floor: only %d of %d requests completed: %v %v", len(seen), n, failed, ctx.Err())
		}
		if dr.Status.Phase == retentionv1.RequestCompleted {
			seen[dr.Name] = true
		}
	}
	elapsed := time.Since(start)
	wg.Wait()
	logCPU(b, n, cpuBefore, cpuByProcess(), elapsed)
	return float64(n) / elapsed.Seconds()
}

// namespace creates an empty namespace for a measurement.
func namespace(b *testing.B) string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "lethe-bench-floor-"}}
	must(b, env.Client.Create(context.Background(), ns))
	return ns.Name
}

// fetch returns a completed request as stored.
func fetch(b *testing.B, ns, name string) *retentionv1.DeletionRequest {
	var dr retentionv1.DeletionRequest
	must(b, env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &dr))
	if dr.Status.Phase != retentionv1.RequestCompleted {
		b.Fatalf("%s is %s, not Completed", name, dr.Status.Phase)
	}
	return &dr
}
