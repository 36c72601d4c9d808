// Package metrics defines Lethe's Prometheus metrics, all under lethe_ and
// registered with controller-runtime's registry (served on the manager's
// metrics endpoint). Labels carry object and collection names, never subject
// identifiers.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	// RowsDeleted counts records deleted, by namespace, dataset and collection.
	RowsDeleted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lethe_rows_deleted_total",
		Help: "Records (rows, keys, objects) deleted by PurgeJobs.",
	}, []string{"namespace", "dataset", "collection"})

	// RowsAnonymized counts records anonymized.
	RowsAnonymized = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lethe_rows_anonymized_total",
		Help: "Records anonymized by PurgeJobs.",
	}, []string{"namespace", "dataset", "collection"})

	// Batches counts executed batches.
	Batches = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lethe_batches_total",
		Help: "Batches executed by PurgeJobs.",
	}, []string{"namespace", "dataset", "store"})

	// BatchDuration observes the duration of one batch transaction.
	BatchDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "lethe_batch_duration_seconds",
		Help:    "Duration of one batch (one short transaction) against a datastore.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"store"})

	// Errors counts datastore errors by kind (unavailable, authentication,
	// not_found, invalid, other).
	Errors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lethe_errors_total",
		Help: "Datastore errors met while executing PurgeJobs, by kind.",
	}, []string{"store", "kind"})

	// PurgeJobs counts finished PurgeJobs by result.
	PurgeJobs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lethe_purgejobs_total",
		Help: "Finished PurgeJobs by result (Succeeded, Failed, Stalled).",
	}, []string{"namespace", "result"})

	// DataStoreUp is 1 while the last probe of a DataStore succeeded.
	DataStoreUp = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "lethe_datastore_up",
		Help: "1 when the last probe of the DataStore succeeded, 0 otherwise.",
	}, []string{"namespace", "datastore", "type"})

	// DeletionRequestDeadline is the time left until a pending request's
	// deadline, in seconds; negative when overdue. Labels name the request
	// object, never the subject.
	DeletionRequestDeadline = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "lethe_deletionrequest_deadline_seconds",
		Help: "Seconds left until a pending DeletionRequest's deadline (negative when overdue).",
	}, []string{"namespace", "deletionrequest"})

	// DeletionRequests counts finished DeletionRequests by result.
	DeletionRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lethe_deletionrequests_total",
		Help: "Finished DeletionRequests by result (Completed, Failed).",
	}, []string{"namespace", "result"})

	// RecipientNotices counts erasure-notice attempts to Recipients by
	// result: delivered, acknowledged, retried (failed, retried later),
	// forged (an acknowledgement rejected), failed (final). Labels name the
	// Recipient object, never the subject.
	RecipientNotices = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lethe_recipient_notices_total",
		Help: "Erasure-notice attempts to Recipients by result (delivered, acknowledged, retried, forged, failed).",
	}, []string{"namespace", "recipient", "result"})
)

// ForgetDataStore removes every series of a DataStore that no longer exists
// (or whose type changed), so a dashboard does not show a deleted store as down.
func ForgetDataStore(namespace, name string) {
	DataStoreUp.DeletePartialMatch(prometheus.Labels{"namespace": namespace, "datastore": name})
}

// ForgetDeletionRequest removes the deadline series of a DeletionRequest
// that finished or no longer exists.
func ForgetDeletionRequest(namespace, name string) {
	DeletionRequestDeadline.DeleteLabelValues(namespace, name)
}

// Collectors are every metric above, registered with controller-runtime's
// registry (the state metrics of StateCollector are registered by the
// manager, with its cache).
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{RowsDeleted, RowsAnonymized, Batches, BatchDuration, Errors, PurgeJobs, DataStoreUp, DeletionRequestDeadline, DeletionRequests, RecipientNotices}
}

func init() {
	ctrlmetrics.Registry.MustRegister(Collectors()...)
}
