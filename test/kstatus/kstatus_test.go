// Package kstatus_test checks that the status Lethe writes reads correctly to
// sigs.k8s.io/cli-utils/pkg/kstatus, the library behind Flux health checks,
// Argo CD-style tooling and `kubectl wait`-like readiness: every lifecycle
// state of every kind, written with the same condition helpers the
// controllers use, computes to Current, InProgress or Failed as intended.
package kstatus_test

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

func meta() metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: "x", Namespace: "ns", Generation: 2}
}

// observed marks the status as computed for the current generation.
func observed(o retentionv1.Object, gen int64) {
	switch t := o.(type) {
	case *retentionv1.DataStore:
		t.Status.ObservedGeneration = gen
	case *retentionv1.Dataset:
		t.Status.ObservedGeneration = gen
	case *retentionv1.RetentionPolicy:
		t.Status.ObservedGeneration = gen
	case *retentionv1.DeletionRequest:
		t.Status.ObservedGeneration = gen
	case *retentionv1.LegalHold:
		t.Status.ObservedGeneration = gen
	case *retentionv1.PurgeJob:
		t.Status.ObservedGeneration = gen
	case *retentionv1.Recipient:
		t.Status.ObservedGeneration = gen
	case *retentionv1.ErasureReplay:
		t.Status.ObservedGeneration = gen
	}
}

func kinds() map[string]func() retentionv1.Object {
	return map[string]func() retentionv1.Object{
		"DataStore":       func() retentionv1.Object { return &retentionv1.DataStore{ObjectMeta: meta()} },
		"Dataset":         func() retentionv1.Object { return &retentionv1.Dataset{ObjectMeta: meta()} },
		"RetentionPolicy": func() retentionv1.Object { return &retentionv1.RetentionPolicy{ObjectMeta: meta()} },
		"DeletionRequest": func() retentionv1.Object { return &retentionv1.DeletionRequest{ObjectMeta: meta()} },
		"LegalHold":       func() retentionv1.Object { return &retentionv1.LegalHold{ObjectMeta: meta()} },
		"PurgeJob":        func() retentionv1.Object { return &retentionv1.PurgeJob{ObjectMeta: meta()} },
		"Recipient":       func() retentionv1.Object { return &retentionv1.Recipient{ObjectMeta: meta()} },
		"ErasureReplay":   func() retentionv1.Object { return &retentionv1.ErasureReplay{ObjectMeta: meta()} },
	}
}

// The lifecycle states every kind goes through, as its controller writes them.
var states = []struct {
	name  string
	apply func(o retentionv1.Object)
	want  status.Status
}{
	{"ready (connected, validated, scheduled, active hold, completed)", func(o retentionv1.Object) {
		observed(o, 2)
		retentionv1.MarkReady(o, retentionv1.ReasonSucceeded, "done")
	}, status.CurrentStatus},
	{"working (probing, running a batch, reviewing)", func(o retentionv1.Object) {
		observed(o, 2)
		retentionv1.MarkReconciling(o, retentionv1.ReasonProgressing, "working")
	}, status.InProgressStatus},
	{"transient failure, retrying (store unreachable)", func(o retentionv1.Object) {
		observed(o, 2)
		retentionv1.MarkNotReady(o, retentionv1.ReasonConnectionFailed, "cannot connect; retrying")
	}, status.InProgressStatus},
	{"needs a human (invalid spec, missing Secret, safety limit, hold)", func(o retentionv1.Object) {
		observed(o, 2)
		retentionv1.MarkStalled(o, retentionv1.ReasonSafetyLimitExceeded, "would exceed")
	}, status.FailedStatus},
	{"spec changed, not yet observed", func(o retentionv1.Object) {
		observed(o, 1)
		retentionv1.MarkReady(o, retentionv1.ReasonSucceeded, "done for generation 1")
	}, status.InProgressStatus},
	{"stalled, then fixed and ready again", func(o retentionv1.Object) {
		observed(o, 2)
		retentionv1.MarkStalled(o, retentionv1.ReasonSecretNotFound, "missing")
		retentionv1.MarkReady(o, retentionv1.ReasonSucceeded, "fixed")
	}, status.CurrentStatus},
	{"stalled while a new attempt starts", func(o retentionv1.Object) {
		observed(o, 2)
		retentionv1.MarkStalled(o, retentionv1.ReasonSecretNotFound, "missing")
		retentionv1.MarkReconciling(o, retentionv1.ReasonProgressing, "retrying")
	}, status.InProgressStatus},
}

func TestKstatusOfEveryLifecycleStateOfEveryKind(t *testing.T) {
	for kind, newObj := range kinds() {
		for _, st := range states {
			t.Run(kind+"/"+st.name, func(t *testing.T) {
				o := newObj()
				st.apply(o)
				got := compute(t, kind, o)
				if got.Status != st.want {
					t.Errorf("kstatus = %s (%s), want %s; conditions %+v", got.Status, got.Message, st.want, o.GetConditions())
				}
			})
		}
	}
}

// PurgeJob phases as the PurgeJob controller ends them.
func TestKstatusOfPurgeJobPhases(t *testing.T) {
	cases := []struct {
		phase retentionv1.PurgeJobPhase
		mark  func(o retentionv1.Object)
		want  status.Status
	}{
		{retentionv1.PurgeJobPending, func(o retentionv1.Object) { retentionv1.MarkReconciling(o, retentionv1.ReasonProgressing, "Preparing") }, status.InProgressStatus},
		{retentionv1.PurgeJobRunning, func(o retentionv1.Object) { retentionv1.MarkReconciling(o, retentionv1.ReasonRunning, "Executing") }, status.InProgressStatus},
		{retentionv1.PurgeJobSucceeded, func(o retentionv1.Object) { retentionv1.MarkReady(o, retentionv1.ReasonSucceeded, "Deleted 5") }, status.CurrentStatus},
		{retentionv1.PurgeJobStalled, func(o retentionv1.Object) {
			retentionv1.MarkStalled(o, retentionv1.ReasonSafetyLimitExceeded, "would touch")
		}, status.FailedStatus},
		{retentionv1.PurgeJobFailed, func(o retentionv1.Object) {
			retentionv1.MarkStalled(o, retentionv1.ReasonInvalidOperation, "table missing")
		}, status.FailedStatus},
		// Suspended by the user (a job that was running, even stalled):
		// never Failed. kstatus reads Ready=False as unfinished work, which
		// a suspended job is; Argo CD's script says Suspended and Flux's
		// healthCheckExprs Current (test/gitops).
		{retentionv1.PurgeJobSuspended, func(o retentionv1.Object) {
			retentionv1.MarkReconciling(o, retentionv1.ReasonRunning, "Executing")
			retentionv1.MarkStalled(o, retentionv1.ReasonInterrupted, "interrupted")
			retentionv1.MarkSuspended(o, retentionv1.ReasonSuspended, "Suspended (spec.suspend)")
		}, status.InProgressStatus},
	}
	for _, tc := range cases {
		t.Run(string(tc.phase), func(t *testing.T) {
			j := &retentionv1.PurgeJob{ObjectMeta: meta()}
			j.Status.ObservedGeneration = 2
			j.Status.Phase = tc.phase
			tc.mark(j)
			if got := compute(t, "PurgeJob", j); got.Status != tc.want {
				t.Errorf("kstatus = %s (%s), want %s", got.Status, got.Message, tc.want)
			}
		})
	}
}

func compute(t *testing.T, kind string, o retentionv1.Object) *status.Result {
	t.Helper()
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{Object: m}
	u.SetAPIVersion(retentionv1.GroupVersion.String())
	u.SetKind(kind)
	res, err := status.Compute(u)
	if err != nil {
		t.Fatal(err)
	}
	return res
}
