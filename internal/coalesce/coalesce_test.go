package coalesce

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

// While a group's PurgeJob runs, requests for the same group keep gathering
// (up to maxGather) instead of starting a PurgeJob each window; once it is
// done, or the wait is over, they start together.
func TestCoalescerGathersWhileTheGroupsJobRuns(t *testing.T) {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, retentionv1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	cl := fake.NewClientBuilder().WithScheme(scheme).Build()
	c := New(cl, []byte("test-digest-key-0123456789abcdef0123"))
	ctx := context.Background()
	ops := []retentionv1.Operation{{Collection: "users", Action: retentionv1.ActionDelete, BySubject: true}}
	add := func(name string) types.NamespacedName {
		req := types.NamespacedName{Namespace: "ns", Name: name}
		c.Add(req, "app", retentionv1.ModeEnforce, ops, map[string][]string{"user_id": {name}})
		return req
	}
	jobs := func() int {
		var list retentionv1.PurgeJobList
		if err := cl.List(ctx, &list, client.InNamespace("ns")); err != nil {
			t.Fatal(err)
		}
		return len(list.Items)
	}

	a := add("a")
	c.flush(ctx)
	if jobs() != 1 || len(c.Assigned(a)) != 1 {
		t.Fatalf("an idle group starts at the first flush: %d jobs, a assigned %v", jobs(), c.Assigned(a))
	}
	b := add("b")
	add("c")
	c.flush(ctx)
	if jobs() != 1 || len(c.Assigned(b)) != 0 {
		t.Fatalf("b and c started while a's job runs: %d jobs", jobs())
	}
	c.Done(a) // a's job is finished
	c.flush(ctx)
	if jobs() != 2 || len(c.Assigned(b)) != 1 {
		t.Fatalf("b and c did not start together once a's job was done: %d jobs", jobs())
	}

	// A busy group waits at most maxGather.
	d := add("d")
	c.flush(ctx)
	if len(c.Assigned(d)) != 0 {
		t.Fatal("d started while b's job runs")
	}
	for _, g := range c.groups {
		g.since = time.Now().Add(-maxGather)
	}
	c.flush(ctx)
	if jobs() != 3 || len(c.Assigned(d)) != 1 {
		t.Fatalf("d still waits after maxGather: %d jobs", jobs())
	}
}
