package receipt

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

func TestBuild(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	finished := metav1.NewTime(now.Add(-time.Minute))
	three, two := int64(3), int64(2)
	plan := []retentionv1.PlannedCollection{
		{Dataset: "app", Collection: "orders", Action: retentionv1.ActionDelete, Matched: &three},
		{Dataset: "app", Collection: "users", Action: retentionv1.ActionAnonymize, Matched: &two},
		{Dataset: "cache", Collection: "sessions", Action: retentionv1.ActionDelete}, // not counted
	}
	jobs := []*retentionv1.PurgeJob{
		{Spec: retentionv1.PurgeJobSpec{DatasetRef: retentionv1.LocalObjectReference{Name: "app"}}, Status: retentionv1.PurgeJobStatus{CompletionTime: &finished}},
		{Spec: retentionv1.PurgeJobSpec{DatasetRef: retentionv1.LocalObjectReference{Name: "cache"}}}, // not finished
	}
	r, err := Build("hmac-sha256:abc", plan, jobs, now, true)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		i    int
		rows int64
		at   time.Time
	}{
		{0, 3, finished.Time},
		{1, 2, finished.Time},
		{2, 0, now},
	}
	if len(r.Entries) != len(cases) {
		t.Fatalf("%d entries, want %d", len(r.Entries), len(cases))
	}
	for _, c := range cases {
		e := r.Entries[c.i]
		if e.Rows != c.rows || !e.CompletedAt.Time.Equal(c.at) || e.Dataset != plan[c.i].Dataset || e.Collection != plan[c.i].Collection || e.Action != plan[c.i].Action {
			t.Errorf("entry %d = %+v, want %d rows at %s", c.i, e, c.rows, c.at)
		}
	}
	if Rows(r) != 5 || !r.Verified || r.SubjectDigest != "hmac-sha256:abc" || !r.CompletedAt.Time.Equal(now) {
		t.Errorf("receipt %+v", r)
	}
	if sum, _ := SHA256(r); sum != r.SHA256 || len(sum) != 64 {
		t.Errorf("SHA256 %q, receipt says %q", sum, r.SHA256)
	}
}

// The checksum covers every field but itself.
func TestSHA256(t *testing.T) {
	at := metav1.NewTime(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	base := func() *retentionv1.Receipt {
		return &retentionv1.Receipt{SubjectDigest: "d", Verified: true, CompletedAt: &at,
			Entries: []retentionv1.ReceiptEntry{{Dataset: "app", Collection: "users", Action: retentionv1.ActionDelete, Rows: 1, CompletedAt: &at}}}
	}
	want, err := SHA256(base())
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		change func(*retentionv1.Receipt)
		same   bool
	}{
		{"its own sha256", func(r *retentionv1.Receipt) { r.SHA256 = "anything" }, true},
		{"rows", func(r *retentionv1.Receipt) { r.Entries[0].Rows = 2 }, false},
		{"subject", func(r *retentionv1.Receipt) { r.SubjectDigest = "e" }, false},
		{"verified", func(r *retentionv1.Receipt) { r.Verified = false }, false},
		{"entry order", func(r *retentionv1.Receipt) {
			r.Entries = append([]retentionv1.ReceiptEntry{{Dataset: "app", Collection: "orders"}}, r.Entries...)
		}, false},
	}
	for _, tc := range cases {
		r := base()
		tc.change(r)
		got, err := SHA256(r)
		if err != nil {
			t.Fatal(err)
		}
		if (got == want) != tc.same {
			t.Errorf("%s: checksum unchanged %v, want %v", tc.name, got == want, tc.same)
		}
	}
}

func TestAcknowledgementsLeaveTheSHA256AsTheLedgerRecordedIt(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	r, err := Build("hmac-sha256:abc", nil, nil, now, true)
	if err != nil {
		t.Fatal(err)
	}
	Acknowledge(r, "crm", "msg_1", now.Add(time.Minute))
	Acknowledge(r, "crm", "msg_1", now.Add(time.Hour)) // once per recipient
	Acknowledge(r, "analytics", "msg_2", now.Add(2*time.Minute))
	if len(r.Acknowledgements) != 2 || !r.Acknowledgements[0].AcknowledgedAt.Time.Equal(now.Add(time.Minute)) {
		t.Fatalf("acknowledgements %+v", r.Acknowledgements)
	}
	sum, err := SHA256(r)
	if err != nil {
		t.Fatal(err)
	}
	if sum != r.SHA256 {
		t.Fatalf("SHA256 changed with acknowledgements: %s, ledger has %s", sum, r.SHA256)
	}
}

// A replay's receipt sums the collections erased again, lists each
// re-erasure's receipt, is verified only when every re-erasure completed
// with one (never for a dry run), and its SHA-256 covers all of it.
func TestReplay(t *testing.T) {
	now := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	er := &retentionv1.ErasureReplay{Spec: retentionv1.ErasureReplaySpec{BackupTime: metav1.NewTime(now.Add(-24 * time.Hour))},
		Status: retentionv1.ErasureReplayStatus{
			Collections: []retentionv1.ReplayCollection{
				{Dataset: "app", Collection: "users", Scanned: 10, Matched: 2, Erased: 2, Action: retentionv1.ActionDelete},
				{Dataset: "app", Collection: "orders", Scanned: 5, Matched: 3, Erased: 3, Action: retentionv1.ActionAnonymize},
				{Dataset: "app", Collection: "empty", Scanned: 4},
			},
			Requests: []retentionv1.ReplayRequest{
				{Name: "r-1", Phase: retentionv1.RequestCompleted, Rows: 3, ReceiptSHA256: "aa"},
				{Name: "r-2", Phase: retentionv1.RequestCompleted, Rows: 2, ReceiptSHA256: "bb"},
			}}}
	rc, err := Replay(er, now)
	if err != nil {
		t.Fatal(err)
	}
	if !rc.Verified || rc.Subjects != 2 || rc.Records != 5 || len(rc.Entries) != 2 || rc.Entries[1].Action != retentionv1.ActionAnonymize || len(rc.Requests) != 2 {
		t.Fatalf("receipt %+v", rc)
	}
	again, _ := Replay(er, now)
	if again.SHA256 != rc.SHA256 || len(rc.SHA256) != 64 {
		t.Fatalf("sha256 %q then %q", rc.SHA256, again.SHA256)
	}
	er.Status.Requests[1].ReceiptSHA256 = "cc"
	if changed, _ := Replay(er, now); changed.SHA256 == rc.SHA256 {
		t.Fatal("the sha256 does not cover the re-erasures' receipts")
	}
	er.Status.Requests[1].Phase = retentionv1.RequestFailed
	if failed, _ := Replay(er, now); failed.Verified {
		t.Fatal("verified with a failed re-erasure")
	}
	er.Spec.DryRun, er.Status.Requests = true, nil
	if dry, _ := Replay(er, now); dry.Verified {
		t.Fatal("a dry run is verified")
	}
}
