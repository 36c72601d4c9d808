// Package receipt builds the receipt of a completed DeletionRequest: per
// planned collection, the subject's records counted before the erasure and
// when the PurgeJob of its Dataset finished, sealed by the SHA-256 of its
// canonical JSON. The receipt carries no personal data (the subject appears
// as its keyed digest); its SHA-256 goes into the erasure ledger
// (internal/ledger), so a receipt shown later can be checked against it.
//
// A receipt never uses a PurgeJob's deleted counts: its rows are the
// subject's records counted before the erasure, and it is built only after
// the verification pass counted none left. A PurgeJob whose totals could not
// be proven exact (CountsVerified False) therefore makes it claim nothing
// more than was proven.
package receipt

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

// Build returns the receipt of an erasure that finished at now, with its
// SHA256 set: one entry per planned collection, in plan order, with the
// rows counted before the erasure (plan[].Matched) and the completion time
// of the PurgeJob of its Dataset (now when there is none). verified is false
// for a dry run.
func Build(subjectDigest string, plan []retentionv1.PlannedCollection, jobs []*retentionv1.PurgeJob, now time.Time, verified bool) (*retentionv1.Receipt, error) {
	r := &retentionv1.Receipt{SubjectDigest: subjectDigest, Verified: verified, CompletedAt: &metav1.Time{Time: now}}
	for _, p := range plan {
		var rows int64
		if p.Matched != nil {
			rows = *p.Matched
		}
		at := metav1.Time{Time: now}
		if t := completion(jobs, p.Dataset); t != nil {
			at = *t
		}
		r.Entries = append(r.Entries, retentionv1.ReceiptEntry{
			Dataset: p.Dataset, Collection: p.Collection, Action: p.Action, Rows: rows, CompletedAt: &at,
		})
	}
	sum, err := SHA256(r)
	if err != nil {
		return nil, err
	}
	r.SHA256 = sum
	return r, nil
}

// completion is when the first PurgeJob of the Dataset finished (nil when
// none did).
func completion(jobs []*retentionv1.PurgeJob, dataset string) *metav1.Time {
	for _, j := range jobs {
		if string(j.Spec.DatasetRef.Name) == dataset {
			return j.Status.CompletionTime
		}
	}
	return nil
}

// Rows is the number of records the receipt's entries count.
func Rows(r *retentionv1.Receipt) int64 {
	var n int64
	for _, e := range r.Entries {
		n += e.Rows
	}
	return n
}

// Acknowledge records a Recipient's acknowledgement of the erasure notice
// (once per recipient). Acknowledgements arrive after completion and are not
// covered by the receipt's SHA256, which the erasure ledger recorded then.
func Acknowledge(r *retentionv1.Receipt, recipient, noticeID string, at time.Time) {
	for _, a := range r.Acknowledgements {
		if a.Recipient == recipient {
			return
		}
	}
	r.Acknowledgements = append(r.Acknowledgements, retentionv1.NoticeAcknowledgement{Recipient: recipient, NoticeID: noticeID, AcknowledgedAt: metav1.Time{Time: at}})
}

// SHA256 is the SHA-256 of the receipt's canonical JSON without its sha256
// field and its acknowledgements (encoding/json sorts nothing, but the
// struct's field order and the entries' plan order are fixed, which makes it
// canonical).
func SHA256(r *retentionv1.Receipt) (string, error) {
	c := r.DeepCopy()
	c.SHA256 = ""
	c.Acknowledgements = nil
	b, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// Replay returns the receipt of an ErasureReplay that finished at now, with
// its SHA256 set: the rows erased again per collection (summed from the
// re-erasures' receipts, in status.collections order) and each
// re-erasure's receipt SHA-256. It is verified when every re-erasure was
// (each completed only after its own verification pass); a dry run is not.
func Replay(er *retentionv1.ErasureReplay, now time.Time) (*retentionv1.ReplayReceipt, error) {
	r := &retentionv1.ReplayReceipt{BackupTime: er.Spec.BackupTime, Subjects: int32(len(er.Status.Requests)),
		Verified: !er.Spec.DryRun, CompletedAt: &metav1.Time{Time: now}}
	for _, c := range er.Status.Collections {
		if c.Erased > 0 {
			r.Entries = append(r.Entries, retentionv1.ReceiptEntry{Dataset: c.Dataset, Collection: c.Collection, Action: c.Action, Rows: c.Erased})
			r.Records += c.Erased
		}
	}
	for _, rq := range er.Status.Requests {
		r.Requests = append(r.Requests, retentionv1.ReplayRequest{Name: rq.Name, SubjectDigest: rq.SubjectDigest, Rows: rq.Rows, ReceiptSHA256: rq.ReceiptSHA256})
		if rq.Phase != retentionv1.RequestCompleted || rq.ReceiptSHA256 == "" {
			r.Verified = false
		}
	}
	c := r.DeepCopy()
	c.SHA256 = ""
	b, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(b)
	r.SHA256 = hex.EncodeToString(sum[:])
	return r, nil
}
