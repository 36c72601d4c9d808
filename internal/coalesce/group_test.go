package coalesce

import (
	"errors"
	"fmt"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

// Requests share a PurgeJob only when its statements are right for all of
// them: same namespace, Dataset, mode, operations and identity types; the
// values do not matter.
func TestGroupKey(t *testing.T) {
	ops := []retentionv1.Operation{{Collection: "users", Action: retentionv1.ActionDelete}}
	anon := []retentionv1.Operation{{Collection: "users", Action: retentionv1.ActionAnonymize,
		Fields: []retentionv1.FieldAnonymization{{Name: "email", Anonymization: retentionv1.Anonymization{Strategy: retentionv1.StrategyRedact}}}}}
	base := groupKey("ns", "app", retentionv1.ModeEnforce, ops, map[string][]string{"user_id": {"1"}})
	cases := []struct {
		name       string
		ns, ds     string
		mode       retentionv1.Mode
		ops        []retentionv1.Operation
		identities map[string][]string
		same       bool
	}{
		{"other values", "ns", "app", retentionv1.ModeEnforce, ops, map[string][]string{"user_id": {"2", "3"}}, true},
		{"other namespace", "other", "app", retentionv1.ModeEnforce, ops, map[string][]string{"user_id": {"1"}}, false},
		{"other Dataset", "ns", "billing", retentionv1.ModeEnforce, ops, map[string][]string{"user_id": {"1"}}, false},
		{"dry run", "ns", "app", retentionv1.ModeDryRun, ops, map[string][]string{"user_id": {"1"}}, false},
		{"other operations", "ns", "app", retentionv1.ModeEnforce, anon, map[string][]string{"user_id": {"1"}}, false},
		{"other identity types", "ns", "app", retentionv1.ModeEnforce, ops, map[string][]string{"user_id": {"1"}, "email": {"a"}}, false},
	}
	for _, tc := range cases {
		if got := groupKey(tc.ns, tc.ds, tc.mode, tc.ops, tc.identities) == base; got != tc.same {
			t.Errorf("%s: same group %v, want %v", tc.name, got, tc.same)
		}
	}
}

// A group is cut into PurgeJobs of at most MaxSubjects requests and
// maxMemberBytes of names.
func TestSplit(t *testing.T) {
	members := func(n, nameLen int) []types.NamespacedName {
		out := make([]types.NamespacedName, n)
		for i := range out {
			out[i] = types.NamespacedName{Namespace: "ns", Name: fmt.Sprintf("%0*d", nameLen, i)} // nameLen bytes
		}
		return out
	}
	cases := []struct {
		name    string
		max     int
		members []types.NamespacedName
		want    []int // sizes of the PurgeJobs
	}{
		{"none", 0, nil, nil},
		{"one job", 0, members(3, 10), []int{3}},
		{"by count", 2, members(5, 10), []int{2, 2, 1}},
		{"no coalescing", 1, members(3, 10), []int{1, 1, 1}},
		{"by bytes", 0, members(3, maxMemberBytes/2), []int{1, 1, 1}},
		{"a name longer than the bound goes alone", 0, members(1, maxMemberBytes+10), []int{1}},
	}
	for _, tc := range cases {
		c := &Coalescer{MaxSubjects: tc.max}
		var got []int
		for _, part := range c.split(tc.members) {
			got = append(got, len(part))
		}
		if len(got) != len(tc.want) {
			t.Errorf("%s: jobs of %v, want %v", tc.name, got, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%s: jobs of %v, want %v", tc.name, got, tc.want)
				break
			}
		}
	}
}

func TestOrphaned(t *testing.T) {
	stalled := func(reason string) []metav1.Condition {
		return []metav1.Condition{{Type: retentionv1.ConditionStalled, Status: metav1.ConditionTrue, Reason: reason}}
	}
	started := metav1.Now()
	coalesced := map[string]string{retentionv1.LabelCoalesced: "true"}
	cases := []struct {
		name string
		job  retentionv1.PurgeJob
		want bool
	}{
		{"Secret never created", retentionv1.PurgeJob{ObjectMeta: metav1.ObjectMeta{Labels: coalesced},
			Status: retentionv1.PurgeJobStatus{Phase: retentionv1.PurgeJobStalled, Conditions: stalled(retentionv1.ReasonSecretNotFound)}}, true},
		{"started before", retentionv1.PurgeJob{ObjectMeta: metav1.ObjectMeta{Labels: coalesced},
			Status: retentionv1.PurgeJobStatus{Phase: retentionv1.PurgeJobStalled, StartTime: &started, Conditions: stalled(retentionv1.ReasonSecretNotFound)}}, false},
		{"stalled for another reason", retentionv1.PurgeJob{ObjectMeta: metav1.ObjectMeta{Labels: coalesced},
			Status: retentionv1.PurgeJobStatus{Phase: retentionv1.PurgeJobStalled, Conditions: stalled(retentionv1.ReasonSafetyLimitExceeded)}}, false},
		{"not coalesced", retentionv1.PurgeJob{
			Status: retentionv1.PurgeJobStatus{Phase: retentionv1.PurgeJobStalled, Conditions: stalled(retentionv1.ReasonSecretNotFound)}}, false},
		{"running", retentionv1.PurgeJob{ObjectMeta: metav1.ObjectMeta{Labels: coalesced},
			Status: retentionv1.PurgeJobStatus{Phase: retentionv1.PurgeJobRunning}}, false},
	}
	for _, tc := range cases {
		if got := Orphaned(&tc.job); got != tc.want {
			t.Errorf("%s: Orphaned = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// The members of a job are verified by one count over their union, whichever
// asks first; a failed count is tried again by the next; a job the
// coalescer does not know is not verified here.
func TestVerified(t *testing.T) {
	c := New(nil, nil)
	ada, alan := types.NamespacedName{Namespace: "ns", Name: "ada"}, types.NamespacedName{Namespace: "ns", Name: "alan"}
	c.jobs["ns/erase-1"] = &jobMembers{union: map[string][]string{"user_id": {"1", "2"}}, remaining: map[types.NamespacedName]bool{ada: true, alan: true}}
	counts := 0
	count := func(union map[string][]string) ([]int64, error) {
		counts++
		if counts == 1 {
			return nil, errors.New("connection reset")
		}
		if len(union["user_id"]) != 2 {
			t.Errorf("counted over %v, want the union", union)
		}
		return []int64{0, 1}, nil
	}
	if _, ok, err := c.Verified("ns", "erase-1", count); !ok || err == nil {
		t.Fatalf("first count: ok %v, err %v", ok, err)
	}
	for range 2 {
		left, ok, err := c.Verified("ns", "erase-1", count)
		if !ok || err != nil || len(left) != 2 || left[1] != 1 {
			t.Fatalf("Verified = %v, %v, %v", left, ok, err)
		}
	}
	if counts != 2 {
		t.Errorf("%d counts, want 2 (one failed, one kept)", counts)
	}
	if _, ok, _ := c.Verified("ns", "erase-2", count); ok {
		t.Error("an unknown job was verified")
	}
	c.Done(ada)
	c.Done(alan)
	if _, ok, _ := c.Verified("ns", "erase-1", count); ok {
		t.Error("a job whose members are all done is still known")
	}
}
