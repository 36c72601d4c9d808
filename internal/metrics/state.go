package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

// State metrics are read from the objects' status at each scrape (from the
// manager's informer cache, no API call), so they are right after a restart
// or a change of leader, unlike counters. Only the leader reports them, so
// that replicas do not double sums. Their labels are object, rule and
// phase names and reasons, never subject identifiers.
var (
	deletionRequestsDesc = prometheus.NewDesc("lethe_deletionrequests_in_phase",
		"DeletionRequests that exist, by phase.",
		[]string{"namespace", "phase"}, nil)
	deadlineDesc = prometheus.NewDesc("lethe_deletionrequest_deadline_timestamp_seconds",
		"Deadline of each DeletionRequest not yet Completed, as a Unix time (Failed requests stay until deleted: they are not answered).",
		[]string{"namespace", "deletionrequest", "phase"}, nil)
	pastRetentionDesc = prometheus.NewDesc("lethe_records_past_retention",
		"Records past their retention period under a RetentionPolicy rule, per collection, at the policy's last count (after each run and every spec.backlogInterval, cutoff at the count; records legal holds keep are not counted).",
		[]string{"namespace", "policy", "rule", "collection"}, nil)
	pastRetentionHeldDesc = prometheus.NewDesc("lethe_records_past_retention_held",
		"Records past their retention period under a RetentionPolicy rule that legal holds keep, per collection, at the policy's last count.",
		[]string{"namespace", "policy", "rule", "collection"}, nil)
	afterRunDesc = prometheus.NewDesc("lethe_records_past_retention_after_run",
		"Records a RetentionPolicy's last finished Enforce run should have deleted or anonymized and that remained after it (legal holds excluded), per rule and collection; what condition BacklogCleared reports.",
		[]string{"namespace", "policy", "rule", "collection"}, nil)
	backlogTimeDesc = prometheus.NewDesc("lethe_records_past_retention_measured_timestamp_seconds",
		"When a RetentionPolicy's records past retention were last counted, as a Unix time.",
		[]string{"namespace", "policy"}, nil)
	lastRunDesc = prometheus.NewDesc("lethe_retentionpolicy_last_run_timestamp_seconds",
		"Instant the RetentionPolicy's last run was scheduled for, as a Unix time.",
		[]string{"namespace", "policy"}, nil)
	lastResultDesc = prometheus.NewDesc("lethe_retentionpolicy_last_run_result",
		"1 for the phase of the RetentionPolicy's last run (Pending, Running, Succeeded, Failed, Stalled).",
		[]string{"namespace", "policy", "result"}, nil)
	lastSuccessDesc = prometheus.NewDesc("lethe_retentionpolicy_last_success_timestamp_seconds",
		"When the RetentionPolicy's last successful run completed, as a Unix time.",
		[]string{"namespace", "policy"}, nil)
	nextRunDesc = prometheus.NewDesc("lethe_retentionpolicy_next_run_timestamp_seconds",
		"When the RetentionPolicy's next run is due, as a Unix time.",
		[]string{"namespace", "policy"}, nil)
	stalledDesc = prometheus.NewDesc("lethe_stalled_objects",
		"Lethe objects with condition Stalled=True (progress needs a human), by kind and reason.",
		[]string{"namespace", "kind", "reason"}, nil)
)

// StateCollector reports the state metrics from a cache of Lethe objects.
type StateCollector struct {
	reader  client.Reader
	elected <-chan struct{}
}

// NewStateCollector reads objects through reader (the manager's cache) once
// elected is closed (mgr.Elected(): at once without leader election).
func NewStateCollector(reader client.Reader, elected <-chan struct{}) *StateCollector {
	return &StateCollector{reader: reader, elected: elected}
}

// RegisterState registers a StateCollector with controller-runtime's
// registry, served on the manager's metrics endpoint.
func RegisterState(reader client.Reader, elected <-chan struct{}) {
	ctrlmetrics.Registry.MustRegister(NewStateCollector(reader, elected))
}

// Describe implements prometheus.Collector.
func (c *StateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{deletionRequestsDesc, deadlineDesc, pastRetentionDesc, pastRetentionHeldDesc, afterRunDesc, backlogTimeDesc, lastRunDesc, lastResultDesc, lastSuccessDesc, nextRunDesc, stalledDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. A kind that cannot be listed
// (cache not yet synced) is left out of this scrape.
func (c *StateCollector) Collect(ch chan<- prometheus.Metric) {
	select {
	case <-c.elected:
	default:
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stalled := map[[3]string]float64{}
	countStalled := func(kind string, o retentionv1.Object) {
		if s := meta.FindStatusCondition(o.GetConditions(), retentionv1.ConditionStalled); s != nil && s.Status == metav1.ConditionTrue {
			stalled[[3]string{o.GetNamespace(), kind, s.Reason}]++
		}
	}
	c.collectRequests(ctx, ch, countStalled)
	c.collectPolicies(ctx, ch, countStalled)
	c.countStalled(ctx, countStalled)
	for k, n := range stalled {
		ch <- prometheus.MustNewConstMetric(stalledDesc, prometheus.GaugeValue, n, k[0], k[1], k[2])
	}
}

func (c *StateCollector) collectRequests(ctx context.Context, ch chan<- prometheus.Metric, countStalled func(string, retentionv1.Object)) {
	var list retentionv1.DeletionRequestList
	if c.reader.List(ctx, &list, client.UnsafeDisableDeepCopy) != nil {
		return
	}
	phases := map[[2]string]float64{}
	for i := range list.Items {
		dr := &list.Items[i]
		countStalled("DeletionRequest", dr)
		phase := dr.Status.Phase
		if phase == "" {
			phase = retentionv1.RequestPending
		}
		phases[[2]string{dr.Namespace, string(phase)}]++
		if phase != retentionv1.RequestCompleted && dr.Status.DeadlineTime != nil {
			ch <- prometheus.MustNewConstMetric(deadlineDesc, prometheus.GaugeValue, unix(dr.Status.DeadlineTime), dr.Namespace, dr.Name, string(phase))
		}
	}
	for k, n := range phases {
		ch <- prometheus.MustNewConstMetric(deletionRequestsDesc, prometheus.GaugeValue, n, k[0], k[1])
	}
}

func (c *StateCollector) collectPolicies(ctx context.Context, ch chan<- prometheus.Metric, countStalled func(string, retentionv1.Object)) {
	var list retentionv1.RetentionPolicyList
	if c.reader.List(ctx, &list, client.UnsafeDisableDeepCopy) != nil {
		return
	}
	for i := range list.Items {
		p := &list.Items[i]
		countStalled("RetentionPolicy", p)
		if t := p.Status.NextScheduleTime; t != nil {
			ch <- prometheus.MustNewConstMetric(nextRunDesc, prometheus.GaugeValue, unix(t), p.Namespace, p.Name)
		}
		if t := p.Status.LastSuccessfulTime; t != nil {
			ch <- prometheus.MustNewConstMetric(lastSuccessDesc, prometheus.GaugeValue, unix(t), p.Namespace, p.Name)
		}
		collectBacklog(ch, p)
		run := p.Status.LastRun
		if run == nil {
			continue
		}
		if run.ScheduledTime != nil {
			ch <- prometheus.MustNewConstMetric(lastRunDesc, prometheus.GaugeValue, unix(run.ScheduledTime), p.Namespace, p.Name)
		}
		ch <- prometheus.MustNewConstMetric(lastResultDesc, prometheus.GaugeValue, 1, p.Namespace, p.Name, string(run.Result))
	}
}

// collectBacklog reports a policy's status.backlog: per rule and
// collection, the records past retention, those legal holds keep and, when
// the last counted run enforced (condition BacklogCleared True or False,
// not a dry run), what it left.
func collectBacklog(ch chan<- prometheus.Metric, p *retentionv1.RetentionPolicy) {
	b := p.Status.Backlog
	if b == nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(backlogTimeDesc, prometheus.GaugeValue, unix(&b.MeasuredTime), p.Namespace, p.Name)
	c := meta.FindStatusCondition(p.Status.Conditions, retentionv1.ConditionBacklogCleared)
	enforced := c != nil && c.Status != metav1.ConditionUnknown
	for _, r := range b.Rules {
		for _, col := range r.Collections {
			labels := []string{p.Namespace, p.Name, string(r.Rule), string(col.Collection)}
			ch <- prometheus.MustNewConstMetric(pastRetentionDesc, prometheus.GaugeValue, float64(col.Records), labels...)
			ch <- prometheus.MustNewConstMetric(pastRetentionHeldDesc, prometheus.GaugeValue, float64(col.Held), labels...)
			if enforced && col.RemainingAfterRun != nil {
				ch <- prometheus.MustNewConstMetric(afterRunDesc, prometheus.GaugeValue, float64(*col.RemainingAfterRun), labels...)
			}
		}
	}
}

// countStalled counts the Stalled objects of the kinds whose other state
// is not reported.
func (c *StateCollector) countStalled(ctx context.Context, countStalled func(string, retentionv1.Object)) {
	var stores retentionv1.DataStoreList
	if c.reader.List(ctx, &stores, client.UnsafeDisableDeepCopy) == nil {
		for i := range stores.Items {
			countStalled("DataStore", &stores.Items[i])
		}
	}
	var sets retentionv1.DatasetList
	if c.reader.List(ctx, &sets, client.UnsafeDisableDeepCopy) == nil {
		for i := range sets.Items {
			countStalled("Dataset", &sets.Items[i])
		}
	}
	var holds retentionv1.LegalHoldList
	if c.reader.List(ctx, &holds, client.UnsafeDisableDeepCopy) == nil {
		for i := range holds.Items {
			countStalled("LegalHold", &holds.Items[i])
		}
	}
	var jobs retentionv1.PurgeJobList
	if c.reader.List(ctx, &jobs, client.UnsafeDisableDeepCopy) == nil {
		for i := range jobs.Items {
			countStalled("PurgeJob", &jobs.Items[i])
		}
	}
	var recipients retentionv1.RecipientList
	if c.reader.List(ctx, &recipients, client.UnsafeDisableDeepCopy) == nil {
		for i := range recipients.Items {
			countStalled("Recipient", &recipients.Items[i])
		}
	}
	var replays retentionv1.ErasureReplayList
	if c.reader.List(ctx, &replays, client.UnsafeDisableDeepCopy) == nil {
		for i := range replays.Items {
			countStalled("ErasureReplay", &replays.Items[i])
		}
	}
}

func unix(t *metav1.Time) float64 { return float64(t.UnixNano()) / 1e9 }
