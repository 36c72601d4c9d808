package controllers

import (
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/log"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/receipt"
)

// complete writes the replay's receipt (internal/receipt.Replay) and marks
// it Completed: after a dry run, or when nothing was found, or when every
// re-erasure completed.
func (r *ErasureReplayReconciler) complete(ctx context.Context, er *retentionv1.ErasureReplay, now time.Time) error {
	rc, err := receipt.Replay(er, now)
	if err != nil {
		return err
	}
	er.Status.Receipt = rc
	er.Status.Phase = retentionv1.ReplayCompleted
	er.Status.CompletionTime = &metav1.Time{Time: now}
	reason := retentionv1.ReasonReplayed
	var msg string
	switch {
	case er.Spec.DryRun:
		reason = retentionv1.ReasonDryRunCompleted
		msg = fmt.Sprintf("Dry run: %d subjects erased since the backup are in the store again, in %d records; nothing was changed", er.Status.SubjectsFound, matched(er))
	case er.Status.LedgerEntries == 0:
		reason = retentionv1.ReasonNothingToReplay
		msg = "The erasure ledger records no erasure at or after the backup time; nothing to replay"
	case len(er.Status.Requests) == 0:
		reason = retentionv1.ReasonNothingToReplay
		msg = "No subject erased at or after the backup time is in the store; nothing to erase again"
	default:
		msg = fmt.Sprintf("%d subjects erased again, %d records; receipt sha256 %s", rc.Subjects, rc.Records, rc.SHA256[:12])
	}
	if er.Status.SubjectsBeforeBackup > 0 {
		msg += fmt.Sprintf("; %d subjects erased before the backup time have records written since, which were kept", er.Status.SubjectsBeforeBackup)
	}
	if n := er.Status.LedgerEntriesIgnored; n > 0 {
		msg += fmt.Sprintf("; %d erasure-ledger lines were not replayed (unsigned, changed or unreadable: status.ledgerEntriesIgnored)", n)
	}
	if len(er.Status.NotScanned) > 0 {
		msg += fmt.Sprintf("; %d Datasets could not be scanned (condition Scanned)", len(er.Status.NotScanned))
	}
	retentionv1.MarkReady(er, reason, msg)
	r.Recorder.Eventf(er, nil, "Normal", reason, "Replay", "%s", msg)
	log.FromContext(ctx).Info("ErasureReplay completed", "subjects", rc.Subjects, "records", rc.Records)
	return nil
}

func matched(er *retentionv1.ErasureReplay) int64 {
	var n int64
	for _, c := range er.Status.Collections {
		n += c.Matched
	}
	return n
}
