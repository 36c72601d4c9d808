package executor

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

// The ledger vouches for a job read back only when its progress is what
// this process wrote last, holding every batch it ran, and no batch ran
// since. A write of a status merely read back vouches for nothing.
func TestLedger(t *testing.T) {
	job := func(deleted int64, cursor string) *retentionv1.PurgeJob {
		return &retentionv1.PurgeJob{
			ObjectMeta: metav1.ObjectMeta{UID: "u1", ResourceVersion: "1"},
			Status: retentionv1.PurgeJobStatus{Deleted: deleted, Operations: []retentionv1.OperationStatus{
				{Phase: retentionv1.PurgeJobRunning, Deleted: deleted, Cursor: cursor, Batches: deleted / 100}}},
		}
	}
	var nilLedger *Ledger
	nilLedger.Vouch(job(0, ""))
	if nilLedger.vouches(job(0, "")) {
		t.Error("a nil ledger vouched")
	}

	l := &Ledger{}
	l.Vouch(job(100, "a"))
	if l.vouches(job(100, "a")) {
		t.Error("vouched for a job this process never counted (a new process writing what it read)")
	}
	// Counted before the first batch, then written by the controller.
	l.counted("u1")
	l.Vouch(job(0, ""))
	if !l.vouches(job(0, "")) {
		t.Error("did not vouch for the started job as written")
	}
	// A batch, then the Run's checkpoint.
	l.dirty("u1")
	if l.vouches(job(0, "")) {
		t.Error("vouched after a batch started, before its write")
	}
	l.Vouch(job(0, "")) // a write of the status read back
	if l.vouches(job(0, "")) {
		t.Error("a write of the status read back vouched with a batch unwritten")
	}
	l.written(job(100, "a"))
	read := job(100, "a")
	read.ResourceVersion, read.Annotations = "7", map[string]string{"note": "a user's"}
	if !l.vouches(read) {
		t.Error("did not vouch for the job as written, read back with other metadata")
	}
	if l.vouches(job(0, "")) {
		t.Error("vouched for an older status (the write was lost)")
	}
	// Only the Run's writes move the progress on.
	l.Vouch(job(500, "z"))
	if l.vouches(job(500, "z")) || !l.vouches(job(100, "a")) {
		t.Error("the controller's write of another progress was vouched for")
	}
	// A recount makes the counts exact again.
	l.dirty("u1")
	l.counted("u1")
	l.Vouch(job(300, "c"))
	if !l.vouches(job(300, "c")) {
		t.Error("no vouching after the recount and a write")
	}
	l.Forget("u1")
	if l.vouches(job(300, "c")) || len(l.jobs) != 0 {
		t.Error("forgotten job still vouched for")
	}
}
