package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/log"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/engine"
	"github.com/lethe-dev/lethe/internal/executor"
	"github.com/lethe-dev/lethe/internal/identity"
	"github.com/lethe-dev/lethe/internal/ledger"
	"github.com/lethe-dev/lethe/internal/replay"
)

// defaultScanBatch is the page size of a scan without spec.batchSize.
const defaultScanBatch = 1000

// scanPageTimeout bounds one page's statement on the client side.
const scanPageTimeout = 2 * time.Minute

// scan reads the ledger and every identity field of the Datasets in scope,
// in pages, and returns the subjects to erase again (nil, nil: nothing
// more to do in this reconcile). The whole scan runs in this reconcile and
// keeps the values it matched in memory only; its progress (records read
// and matched per collection) is written to the status as it goes. A
// manager restarted mid-scan scans again from the start: the scan only
// reads, so that is safe, and the subjects it finds are the same.
//
// Pages are paced like a purge's batches: the DataStore's
// spec.limits.maxBatchesPerSecond (one limiter per store shared with its
// PurgeJobs) and its health limits (the same gate as a PurgeJob's) are
// asked before each page. Purge windows do not apply: the scan changes
// nothing; the re-erasures keep to them as any erasure does.
func (r *ErasureReplayReconciler) scan(ctx context.Context, er *retentionv1.ErasureReplay, w *statusWriter[*retentionv1.ErasureReplay], store *retentionv1.DataStore, datasets []retentionv1.Dataset, now time.Time) (*[]replay.Subject, error) {
	all, unreadable, err := ledger.Entries(ctx, r.APIReader, er.Namespace)
	if err != nil {
		return nil, err
	}
	// Only lines a manager holding the digest key wrote, unchanged (and,
	// when asked, lines written before lines were signed).
	var entries []ledger.Entry
	ignored := unreadable
	for _, e := range all {
		if e.Verify(r.DigestKey) || (!e.Signed() && er.Spec.AcceptUnsignedLedgerEntries) {
			entries = append(entries, e)
		} else {
			ignored++
		}
	}
	index := replay.NewIndex(entries, er.Spec.BackupTime.Time)
	er.Status.LedgerEntries, er.Status.LedgerEntriesBefore = int32(index.After), int32(index.Before)
	er.Status.LedgerEntriesIgnored = int32(ignored)
	er.Status.Phase = retentionv1.ReplayScanning
	if er.Status.StartTime == nil {
		er.Status.StartTime = &metav1.Time{Time: now}
	}
	er.Status.Collections, er.Status.NotScanned = nil, nil
	if ignored > 0 {
		log.FromContext(ctx).Info("Erasure ledger lines not replayed (unreadable, unsigned or not verified)", "lines", ignored)
	}
	if index.After == 0 {
		// Nothing was erased since the backup: nothing can have come back.
		retentionv1.SetCondition(er, retentionv1.ConditionScanned, metav1.ConditionTrue, retentionv1.ReasonNothingToReplay,
			fmt.Sprintf("The erasure ledger records no erasure at or after %s (%d before it); no scan was needed", er.Spec.BackupTime.UTC().Format(time.RFC3339), index.Before))
		return &[]replay.Subject{}, nil
	}
	retentionv1.MarkReconciling(er, retentionv1.ReasonScanning, fmt.Sprintf("Scanning DataStore %s for the %d subjects erased since the backup", store.Name, index.After))
	if err := w.write(ctx, er); err != nil {
		return nil, err
	}

	driver, err := r.Pool.Get(ctx, store)
	if err != nil {
		_, msg := classify(err)
		return nil, fmt.Errorf("DataStore %s: %s", store.Name, msg)
	}
	scanner, ok := driver.(datastore.IdentityScanner)
	matcher := replay.NewMatcher(r.DigestKey, index)
	batch := defaultScanBatch
	if er.Spec.BatchSize != nil {
		batch = int(*er.Spec.BatchSize)
	}
	if m := store.Spec.Limits.MaxBatchSize; m > 0 && int(m) < batch {
		batch = int(m)
	}
	pace := &scanPace{r: r, er: er, w: w, store: store, driver: driver, last: time.Now()}
	for i := range datasets {
		ds := &datasets[i]
		if !ok {
			r.notScanned(er, ds.Name, fmt.Sprintf("a %s store cannot be scanned; check it by hand", store.Spec.Type))
			continue
		}
		why, err := r.scanDataset(ctx, er, pace, scanner, matcher, store, ds, batch)
		if err != nil {
			return nil, err
		}
		if len(why) > 0 {
			r.notScanned(er, ds.Name, strings.Join(why, "; "))
		}
	}

	subjects := matcher.Subjects()
	// Values an identity Secret cannot carry (control characters, leading
	// or trailing spaces) are left out; a subject left with none is
	// reported, not erased.
	kept := subjects[:0]
	skipped := 0
	for _, s := range subjects {
		for typ, vs := range s.Identities {
			var ok []string
			for _, v := range vs {
				if identity.Check(typ, v) == nil && v != "" && strings.TrimSpace(v) == v {
					ok = append(ok, v)
				} else {
					skipped++
				}
			}
			if len(ok) == 0 {
				delete(s.Identities, typ)
			} else {
				s.Identities[typ] = ok
			}
		}
		if len(s.Identities) > 0 {
			kept = append(kept, s)
		}
	}
	er.Status.SubjectsFound = int32(len(subjects))
	er.Status.SubjectsBeforeBackup = int32(matcher.BeforeBackup())
	scanned := "Every Dataset in scope was scanned"
	if skipped > 0 {
		scanned += fmt.Sprintf("; %d identity values found cannot be passed to an erasure (control characters, leading or trailing spaces) and were left out: check those records by hand", skipped)
	}
	if len(er.Status.NotScanned) > 0 {
		var names []string
		for _, n := range er.Status.NotScanned {
			names = append(names, n.Dataset)
		}
		retentionv1.SetCondition(er, retentionv1.ConditionScanned, metav1.ConditionFalse, retentionv1.ReasonNotScannable,
			fmt.Sprintf("Not scanned: %s (status.notScanned says why); their records were not checked against the ledger", strings.Join(names, ", ")))
	} else {
		retentionv1.SetCondition(er, retentionv1.ConditionScanned, metav1.ConditionTrue, retentionv1.ReasonSucceeded, scanned)
	}
	log.FromContext(ctx).Info("Restored store scanned against the erasure ledger", "dataStore", store.Name, "subjects", len(kept), "beforeBackup", er.Status.SubjectsBeforeBackup)
	return &kept, nil
}

// scanDataset scans every collection of a Dataset that has identity
// fields. It returns why collections could not be scanned (none when all
// were; the others are scanned all the same), or a transient error (the
// store unavailable: the scan is retried).
func (r *ErasureReplayReconciler) scanDataset(ctx context.Context, er *retentionv1.ErasureReplay, pace *scanPace, scanner datastore.IdentityScanner, m *replay.Matcher, store *retentionv1.DataStore, ds *retentionv1.Dataset, batch int) ([]string, error) {
	var why []string
	for ci := range ds.Spec.Collections {
		c := &ds.Spec.Collections[ci]
		if len(c.Identities) == 0 {
			continue // reached through references only: erased with its parents
		}
		coll, err := engine.ToDriver(store.Spec.Type, c)
		if err != nil {
			why = append(why, fmt.Sprintf("collection %s: %v", c.Name, err))
			continue
		}
		er.Status.Collections = append(er.Status.Collections, retentionv1.ReplayCollection{Dataset: ds.Name, Collection: string(c.Name)})
		st := &er.Status.Collections[len(er.Status.Collections)-1]
		cursor := ""
	pages:
		for {
			if err := pace.wait(ctx); err != nil {
				return nil, err
			}
			pctx, cancel := context.WithTimeout(ctx, scanPageTimeout)
			page, err := scanner.ScanIdentities(pctx, coll, cursor, batch)
			cancel()
			if err != nil {
				_, msg := classify(err)
				if errors.Is(err, datastore.ErrInvalid) || errors.Is(err, datastore.ErrNotFound) {
					why = append(why, fmt.Sprintf("collection %s: %s", c.Name, msg))
					break pages
				}
				return nil, fmt.Errorf("scanning collection %s of Dataset %s: %s", c.Name, ds.Name, msg)
			}
			st.Scanned += int64(page.Scanned)
			for _, rec := range page.Records {
				if m.Add(ds.Name, rec) {
					st.Matched++
				}
			}
			if page.Done {
				break
			}
			cursor = page.Cursor
			if err := pace.progress(ctx); err != nil {
				return nil, err
			}
		}
	}
	return why, nil
}

func (r *ErasureReplayReconciler) notScanned(er *retentionv1.ErasureReplay, dataset, why string) {
	er.Status.NotScanned = append(er.Status.NotScanned, retentionv1.ReplayDataset{Dataset: dataset, Reason: why})
}

// scanPace paces a scan's pages: the store's batch rate limit and health
// gate before each page, and a status write of the progress at most every
// ProgressInterval.
type scanPace struct {
	r      *ErasureReplayReconciler
	er     *retentionv1.ErasureReplay
	w      *statusWriter[*retentionv1.ErasureReplay]
	store  *retentionv1.DataStore
	driver datastore.Driver
	last   time.Time
}

func (p *scanPace) wait(ctx context.Context) error {
	if l := p.r.replayThrottles().For(p.store.Namespace+"/"+p.store.Name, p.store.Spec.Limits.MaxBatchesPerSecond, p.r.now()); l != nil {
		if err := l.Wait(ctx); err != nil {
			return err
		}
	}
	gate := &jobRun{r: &PurgeJobReconciler{Deps: p.r.Deps}, store: p.store, driver: p.driver}
	for {
		pause, err := gate.healthGate(ctx)
		if err != nil {
			return err
		}
		if pause == nil {
			return nil
		}
		retentionv1.MarkReconciling(p.er, pause.Reason, "Scan paused: "+pause.Message)
		if err := p.w.write(ctx, p.er); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause.After(time.Now())):
		}
		retentionv1.MarkReconciling(p.er, retentionv1.ReasonScanning, fmt.Sprintf("Scanning DataStore %s", p.store.Name))
	}
}

func (p *scanPace) progress(ctx context.Context) error {
	interval := p.r.ProgressInterval
	if interval <= 0 {
		interval = executor.DefaultCheckpointInterval
	}
	if time.Since(p.last) < interval {
		return nil
	}
	p.last = time.Now()
	return p.w.write(ctx, p.er)
}

// fallbackThrottles serve reconcilers built without Setup (which shares one
// Throttles between PurgeJobs and replays).
var fallbackThrottles executor.Throttles

// throttles are the per-DataStore batch limiters shared with PurgeJobs.
func (r *ErasureReplayReconciler) replayThrottles() *executor.Throttles {
	if r.Deps.Throttles == nil {
		return &fallbackThrottles
	}
	return r.Deps.Throttles
}
