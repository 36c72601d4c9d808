package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

func at(s string) *metav1.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return &metav1.Time{Time: t}
}

func stalled(reason string) []metav1.Condition {
	return []metav1.Condition{
		{Type: retentionv1.ConditionReady, Status: metav1.ConditionFalse, Reason: reason},
		{Type: retentionv1.ConditionStalled, Status: metav1.ConditionTrue, Reason: reason},
	}
}

func stateObjects() []client.Object {
	om := func(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Namespace: "shop", Name: name} }
	return []client.Object{
		&retentionv1.DeletionRequest{ObjectMeta: om("a"), Status: retentionv1.DeletionRequestStatus{
			Phase: retentionv1.RequestAwaitingApproval, DeadlineTime: at("2030-01-31T00:00:00Z")}},
		&retentionv1.DeletionRequest{ObjectMeta: om("b"), Status: retentionv1.DeletionRequestStatus{
			Phase: retentionv1.RequestAwaitingApproval, DeadlineTime: at("2030-02-01T00:00:00Z")}},
		&retentionv1.DeletionRequest{ObjectMeta: om("done"), Status: retentionv1.DeletionRequestStatus{
			Phase: retentionv1.RequestCompleted, DeadlineTime: at("2030-01-01T00:00:00Z")}},
		&retentionv1.DeletionRequest{ObjectMeta: om("broken"), Status: retentionv1.DeletionRequestStatus{
			Phase: retentionv1.RequestFailed, DeadlineTime: at("2030-01-02T00:00:00Z"), Conditions: stalled(retentionv1.ReasonVerificationFailed)}},
		&retentionv1.DeletionRequest{ObjectMeta: om("new")},
		&retentionv1.RetentionPolicy{ObjectMeta: om("orders"), Status: retentionv1.RetentionPolicyStatus{
			NextScheduleTime:   at("2030-01-02T03:00:00Z"),
			LastSuccessfulTime: at("2030-01-01T03:00:10Z"),
			LastRun:            &retentionv1.RunSummary{PurgeJob: "orders-run", ScheduledTime: at("2030-01-01T03:00:00Z"), Result: retentionv1.PurgeJobRunning},
			Conditions:         []metav1.Condition{{Type: retentionv1.ConditionBacklogCleared, Status: metav1.ConditionFalse, Reason: retentionv1.ReasonBacklogRemaining}},
			Backlog: &retentionv1.Backlog{Records: 40, Held: 3, MeasuredTime: *at("2030-01-01T04:00:00Z"), AfterRun: "orders-run-0", Rules: []retentionv1.RuleBacklog{
				{Rule: "orders", Records: 40, Held: 3, RemainingAfterRun: ptr(int64(30)), Collections: []retentionv1.CollectionBacklog{
					{Collection: "order_items", Records: 10, RemainingAfterRun: ptr(int64(0))},
					{Collection: "orders", Records: 30, Held: 3, RemainingAfterRun: ptr(int64(30))}}},
				{Rule: "sessions", Collections: []retentionv1.CollectionBacklog{{Collection: "sessions"}}},
			}},
		}},
		// A dry run's leftovers are not a failure: no after-run series.
		&retentionv1.RetentionPolicy{ObjectMeta: om("preview"), Status: retentionv1.RetentionPolicyStatus{
			Conditions: []metav1.Condition{{Type: retentionv1.ConditionBacklogCleared, Status: metav1.ConditionUnknown, Reason: retentionv1.ReasonBacklogDryRun}},
			Backlog: &retentionv1.Backlog{Records: 7, MeasuredTime: *at("2030-01-01T04:00:00Z"), AfterRun: "preview-run", Rules: []retentionv1.RuleBacklog{
				{Rule: "orders", Records: 7, RemainingAfterRun: ptr(int64(7)), Collections: []retentionv1.CollectionBacklog{{Collection: "orders", Records: 7, RemainingAfterRun: ptr(int64(7))}}}}},
		}},
		&retentionv1.RetentionPolicy{ObjectMeta: om("never-ran"), Status: retentionv1.RetentionPolicyStatus{Conditions: stalled(retentionv1.ReasonDatasetNotFound)}},
		&retentionv1.DataStore{ObjectMeta: om("db"), Status: retentionv1.DataStoreStatus{Conditions: stalled(retentionv1.ReasonSecretNotFound)}},
		&retentionv1.PurgeJob{ObjectMeta: om("erase-1"), Status: retentionv1.PurgeJobStatus{Conditions: stalled(retentionv1.ReasonSafetyLimitExceeded)}},
	}
}

func ptr[T any](v T) *T { return &v }

func newReader(t *testing.T) client.Reader {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := retentionv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	return fake.NewClientBuilder().WithScheme(scheme).WithObjects(stateObjects()...).Build()
}

func TestStateCollector(t *testing.T) {
	elected := make(chan struct{})
	c := NewStateCollector(newReader(t), elected)
	if n := testutil.CollectAndCount(c); n != 0 {
		t.Fatalf("a replica that is not the leader reported %d state series; want none", n)
	}
	close(elected)
	want := `
# HELP lethe_deletionrequest_deadline_timestamp_seconds Deadline of each DeletionRequest not yet Completed, as a Unix time (Failed requests stay until deleted: they are not answered).
# TYPE lethe_deletionrequest_deadline_timestamp_seconds gauge
lethe_deletionrequest_deadline_timestamp_seconds{deletionrequest="a",namespace="shop",phase="AwaitingApproval"} 1.896048e+09
lethe_deletionrequest_deadline_timestamp_seconds{deletionrequest="b",namespace="shop",phase="AwaitingApproval"} 1.8961344e+09
lethe_deletionrequest_deadline_timestamp_seconds{deletionrequest="broken",namespace="shop",phase="Failed"} 1.8935424e+09
# HELP lethe_deletionrequests_in_phase DeletionRequests that exist, by phase.
# TYPE lethe_deletionrequests_in_phase gauge
lethe_deletionrequests_in_phase{namespace="shop",phase="AwaitingApproval"} 2
lethe_deletionrequests_in_phase{namespace="shop",phase="Completed"} 1
lethe_deletionrequests_in_phase{namespace="shop",phase="Failed"} 1
lethe_deletionrequests_in_phase{namespace="shop",phase="Pending"} 1
# HELP lethe_records_past_retention Records past their retention period under a RetentionPolicy rule, per collection, at the policy's last count (after each run and every spec.backlogInterval, cutoff at the count; records legal holds keep are not counted).
# TYPE lethe_records_past_retention gauge
lethe_records_past_retention{collection="order_items",namespace="shop",policy="orders",rule="orders"} 10
lethe_records_past_retention{collection="orders",namespace="shop",policy="orders",rule="orders"} 30
lethe_records_past_retention{collection="orders",namespace="shop",policy="preview",rule="orders"} 7
lethe_records_past_retention{collection="sessions",namespace="shop",policy="orders",rule="sessions"} 0
# HELP lethe_records_past_retention_after_run Records a RetentionPolicy's last finished Enforce run should have deleted or anonymized and that remained after it (legal holds excluded), per rule and collection; what condition BacklogCleared reports.
# TYPE lethe_records_past_retention_after_run gauge
lethe_records_past_retention_after_run{collection="order_items",namespace="shop",policy="orders",rule="orders"} 0
lethe_records_past_retention_after_run{collection="orders",namespace="shop",policy="orders",rule="orders"} 30
# HELP lethe_records_past_retention_held Records past their retention period under a RetentionPolicy rule that legal holds keep, per collection, at the policy's last count.
# TYPE lethe_records_past_retention_held gauge
lethe_records_past_retention_held{collection="order_items",namespace="shop",policy="orders",rule="orders"} 0
lethe_records_past_retention_held{collection="orders",namespace="shop",policy="orders",rule="orders"} 3
lethe_records_past_retention_held{collection="orders",namespace="shop",policy="preview",rule="orders"} 0
lethe_records_past_retention_held{collection="sessions",namespace="shop",policy="orders",rule="sessions"} 0
# HELP lethe_records_past_retention_measured_timestamp_seconds When a RetentionPolicy's records past retention were last counted, as a Unix time.
# TYPE lethe_records_past_retention_measured_timestamp_seconds gauge
lethe_records_past_retention_measured_timestamp_seconds{namespace="shop",policy="orders"} 1.8934704e+09
lethe_records_past_retention_measured_timestamp_seconds{namespace="shop",policy="preview"} 1.8934704e+09
# HELP lethe_retentionpolicy_last_run_result 1 for the phase of the RetentionPolicy's last run (Pending, Running, Succeeded, Failed, Stalled).
# TYPE lethe_retentionpolicy_last_run_result gauge
lethe_retentionpolicy_last_run_result{namespace="shop",policy="orders",result="Running"} 1
# HELP lethe_retentionpolicy_last_run_timestamp_seconds Instant the RetentionPolicy's last run was scheduled for, as a Unix time.
# TYPE lethe_retentionpolicy_last_run_timestamp_seconds gauge
lethe_retentionpolicy_last_run_timestamp_seconds{namespace="shop",policy="orders"} 1.8934668e+09
# HELP lethe_retentionpolicy_last_success_timestamp_seconds When the RetentionPolicy's last successful run completed, as a Unix time.
# TYPE lethe_retentionpolicy_last_success_timestamp_seconds gauge
lethe_retentionpolicy_last_success_timestamp_seconds{namespace="shop",policy="orders"} 1.89346681e+09
# HELP lethe_retentionpolicy_next_run_timestamp_seconds When the RetentionPolicy's next run is due, as a Unix time.
# TYPE lethe_retentionpolicy_next_run_timestamp_seconds gauge
lethe_retentionpolicy_next_run_timestamp_seconds{namespace="shop",policy="orders"} 1.8935532e+09
# HELP lethe_stalled_objects Lethe objects with condition Stalled=True (progress needs a human), by kind and reason.
# TYPE lethe_stalled_objects gauge
lethe_stalled_objects{kind="DataStore",namespace="shop",reason="SecretNotFound"} 1
lethe_stalled_objects{kind="DeletionRequest",namespace="shop",reason="VerificationFailed"} 1
lethe_stalled_objects{kind="PurgeJob",namespace="shop",reason="SafetyLimitExceeded"} 1
lethe_stalled_objects{kind="RetentionPolicy",namespace="shop",reason="DatasetNotFound"} 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
}
