package controllers

import (
	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/executor"
	"github.com/lethe-dev/lethe/internal/schedule"
)

// sizer is the job's executor.Run.Sizer: nil when the job sets a fixed
// spec.batchSize; otherwise each operation's adaptive batch size within the
// DataStore's limits (targetBatchDuration, minBatchSize, maxBatchSize),
// kept by the reconciler per store, Dataset, collection and action, so the
// size learned in one slice carries over to the next slice and the next
// job (internal/executor/batchsize.go).
func (j *jobRun) sizer() func(datastore.Operation) *executor.BatchSizer {
	if j.job.Spec.BatchSize > 0 {
		return nil
	}
	l := j.store.Spec.Limits
	cfg := executor.BatchSizing{Min: int(l.MinBatchSize), Max: int(l.MaxBatchSize)}
	if l.TargetBatchDuration != "" {
		// Validated by the API server; an unreadable value keeps the default.
		if d, err := schedule.ParseTimeout(string(l.TargetBatchDuration)); err == nil {
			cfg.Target = d
		}
	}
	key := j.store.Namespace + "/" + j.store.Name + "/" + string(j.job.Spec.DatasetRef.Name) + "/"
	return func(op datastore.Operation) *executor.BatchSizer {
		action := "anonymize"
		if op.Delete {
			action = "delete"
		}
		return j.r.sizes.For(key+op.Collection.Name+"/"+action, cfg)
	}
}
