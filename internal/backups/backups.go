// Package backups says when the erased records of a completed
// DeletionRequest are gone from the backups too: every DataStore of the plan
// declares how long its backups are kept (spec.backups.retention), and the
// last backup that may hold a record erased at time T expires at T plus the
// longest of them. The DeletionRequest controller shows it as
// status.backupsExpireTime and the condition BackupsExpired
// (controllers/deletionrequest_backups.go).
package backups

import (
	"fmt"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/schedule"
)

// Store is a DataStore of the plan: its name and its declared backup
// retention ("" when it declares none).
type Store struct {
	Name      string
	Retention string
}

// Expiry returns when the last backup holding records erased at completed
// expires (completed plus the longest retention) and the stores that declare
// no retention, sorted; with such a store the time is not known and zero.
func Expiry(completed time.Time, stores []Store) (time.Time, []string, error) {
	var unknown []string
	last := completed
	for _, s := range stores {
		if s.Retention == "" {
			unknown = append(unknown, s.Name)
			continue
		}
		r, err := schedule.ParseWait(s.Retention)
		if err != nil {
			return time.Time{}, nil, fmt.Errorf("DataStore %s: spec.backups.retention: %w", s.Name, err)
		}
		at, err := r.Deadline(completed)
		if err != nil {
			return time.Time{}, nil, fmt.Errorf("DataStore %s: spec.backups.retention: %w", s.Name, err)
		}
		if at.After(last) {
			last = at
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return time.Time{}, slices.Compact(unknown), nil
	}
	return last, nil, nil
}

// Condition is the BackupsExpired condition at now, and how long until it
// changes (0 when it will not): Unknown (BackupRetentionUnknown) when a
// store declares no retention, False (BackupsRetained) before the expiry,
// True (BackupsExpired) from it on.
func Condition(expiry time.Time, unknown []string, now time.Time) (status metav1.ConditionStatus, reason, msg string, wait time.Duration) {
	switch {
	case len(unknown) > 0:
		return metav1.ConditionUnknown, retentionv1.ReasonBackupRetentionUnknown,
			fmt.Sprintf("DataStore %s declares no spec.backups.retention: when its backups lose the erased records is not known", strings.Join(unknown, ", ")), 0
	case now.Before(expiry):
		return metav1.ConditionFalse, retentionv1.ReasonBackupsRetained,
			fmt.Sprintf("Backups may hold the erased records until %s", expiry.UTC().Format(time.RFC3339)), expiry.Sub(now)
	default:
		return metav1.ConditionTrue, retentionv1.ReasonBackupsExpired,
			fmt.Sprintf("The last backup that held the erased records expired at %s", expiry.UTC().Format(time.RFC3339)), 0
	}
}
