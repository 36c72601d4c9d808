// Package monitoring checks Lethe's alerts (config/prometheus) and Grafana
// dashboard (config/grafana) against the metrics the manager really
// exports: every metric name and label a rule or panel uses must be served
// by the manager's registry. Alerts are also unit-tested with promtool.
package monitoring

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/lethe-dev/lethe/internal/metrics"
)

// targetLabels are added by Prometheus to every scraped series.
var targetLabels = []string{"instance", "job"}

// catalogue maps every series name the manager serves to its label names.
type catalogue map[string]map[string]bool

func (c catalogue) add(name string, labels ...string) {
	if c[name] == nil {
		c[name] = map[string]bool{}
	}
	for _, l := range append(labels, targetLabels...) {
		c[name][l] = true
	}
}

func (c catalogue) addFamilies(t *testing.T, g prometheus.Gatherer) {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		var labels []string
		if len(f.GetMetric()) > 0 {
			for _, l := range f.GetMetric()[0].GetLabel() {
				labels = append(labels, l.GetName())
			}
		}
		name := f.GetName()
		if f.GetType() == dto.MetricType_HISTOGRAM {
			c.add(name+"_bucket", append(labels, "le")...)
			c.add(name+"_sum", labels...)
			c.add(name+"_count", labels...)
			continue
		}
		c.add(name, labels...)
	}
}

// exported builds the catalogue of what the manager serves: Lethe's
// collectors (internal/metrics), its state collector, and controller-runtime's
// own metrics of a running controller and leader election.
func exported(t *testing.T) catalogue {
	t.Helper()
	c := catalogue{}

	// Lethe's vectors: give each a series with empty label values, so the
	// registry reports its name, type and label names.
	reg := prometheus.NewRegistry()
	for _, col := range metrics.Collectors() {
		if err := touch(col); err != nil {
			t.Fatal(err)
		}
		reg.MustRegister(col)
	}
	c.addFamilies(t, reg)
	for _, col := range metrics.Collectors() {
		if v, ok := col.(interface{ Reset() }); ok {
			v.Reset()
		}
	}

	// The state collector's descriptors, each as a constant gauge.
	descs := make(chan *prometheus.Desc, 64)
	metrics.NewStateCollector(nil, nil).Describe(descs)
	close(descs)
	state := prometheus.NewRegistry()
	for d := range descs {
		m, err := constMetric(d)
		if err != nil {
			t.Fatal(err)
		}
		state.MustRegister(constCollector{d, m})
	}
	c.addFamilies(t, state)

	// controller-runtime: a controller's reconcile and work-queue metrics
	// exist once it has started; the leader-election gauge once an elector
	// has led.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ctl, err := controller.NewUnmanaged("purgejob", controller.Options{
		Reconciler:         reconcile.Func(func(context.Context, reconcile.Request) (reconcile.Result, error) { return reconcile.Result{}, nil }),
		SkipNameValidation: ptr.To(true),
	})
	if err != nil {
		t.Fatal(err)
	}
	events := make(chan event.GenericEvent, 1)
	events <- event.GenericEvent{Object: &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "x"}}}
	if err := ctl.Watch(source.Channel(events, &handler.EnqueueRequestForObject{})); err != nil {
		t.Fatal(err)
	}
	go func() { _ = ctl.Start(ctx) }()
	lead(t)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.addFamilies(t, ctrlmetrics.Registry)
		if c["workqueue_depth"] != nil && c["leader_election_master_status"] != nil && c["controller_runtime_reconcile_time_seconds_bucket"] != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("controller-runtime's metrics did not appear: %v", c.names())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return c
}

func (c catalogue) names() []string {
	var n []string
	for k := range c {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// touch creates one series with empty label values in a metric vector.
func touch(col prometheus.Collector) error {
	type vec[M any] interface {
		GetMetricWithLabelValues(...string) (M, error)
	}
	try := func(get func([]string) error) error {
		for n := 0; n <= 10; n++ {
			if get(make([]string, n)) == nil {
				return nil
			}
		}
		return fmt.Errorf("cannot find the label count of %T", col)
	}
	switch v := col.(type) {
	case vec[prometheus.Counter]:
		return try(func(l []string) error { _, err := v.GetMetricWithLabelValues(l...); return err })
	case vec[prometheus.Gauge]:
		return try(func(l []string) error { _, err := v.GetMetricWithLabelValues(l...); return err })
	case vec[prometheus.Observer]:
		return try(func(l []string) error { _, err := v.GetMetricWithLabelValues(l...); return err })
	}
	return nil
}

// constMetric is a gauge of d with empty label values.
func constMetric(d *prometheus.Desc) (prometheus.Metric, error) {
	for n := 0; n <= 10; n++ {
		if m, err := prometheus.NewConstMetric(d, prometheus.GaugeValue, 0, make([]string, n)...); err == nil {
			return m, nil
		}
	}
	return nil, fmt.Errorf("cannot find the label count of %s", d)
}

type constCollector struct {
	d *prometheus.Desc
	m prometheus.Metric
}

func (c constCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.d }
func (c constCollector) Collect(ch chan<- prometheus.Metric) { ch <- c.m }

// lead runs a leader elector on an in-memory lock until it leads, which
// sets controller-runtime's leader_election_master_status.
func lead(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	led := make(chan struct{})
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:          &memoryLock{},
		Name:          "lethe.retention.lethe.dev",
		LeaseDuration: 2 * time.Second, RenewDeadline: time.Second, RetryPeriod: 100 * time.Millisecond,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(context.Context) { close(led) },
			OnStoppedLeading: func() {},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	go le.Run(ctx)
	select {
	case <-led:
	case <-time.After(10 * time.Second):
		t.Fatal("the in-memory leader elector did not lead")
	}
}

// memoryLock is a resourcelock.Interface kept in memory.
type memoryLock struct {
	rec *resourcelock.LeaderElectionRecord
}

func (l *memoryLock) Get(context.Context) (*resourcelock.LeaderElectionRecord, []byte, error) {
	if l.rec == nil {
		return nil, nil, apierrors.NewNotFound(schema.GroupResource{Resource: "leases"}, "memory")
	}
	r := *l.rec
	return &r, []byte(fmt.Sprint(r)), nil
}
func (l *memoryLock) Create(_ context.Context, r resourcelock.LeaderElectionRecord) error {
	l.rec = &r
	return nil
}
func (l *memoryLock) Update(_ context.Context, r resourcelock.LeaderElectionRecord) error {
	l.rec = &r
	return nil
}
func (l *memoryLock) RecordEvent(string) {}
func (l *memoryLock) Identity() string   { return "test" }
func (l *memoryLock) Describe() string   { return "memory" }

// problems lists every metric or label of q that the catalogue lacks; what
// names q in them.
func (c catalogue) problems(what, q string) []string {
	u, err := extract(q)
	if err != nil {
		return []string{fmt.Sprintf("%s: %v", what, err)}
	}
	if len(u.selectors) == 0 {
		return []string{fmt.Sprintf("%s uses no metric: %s", what, q)}
	}
	var out []string
	all := map[string]bool{}
	for _, s := range u.selectors {
		labels, ok := c[s.metric]
		if !ok {
			out = append(out, fmt.Sprintf("%s uses metric %s, which the manager does not export", what, s.metric))
			continue
		}
		for _, l := range s.labels {
			if !labels[l] {
				out = append(out, fmt.Sprintf("%s matches label %s of %s, which it does not have (it has %s)", what, l, s.metric, keys(labels)))
			}
		}
		for l := range labels {
			all[l] = true
		}
	}
	for _, l := range u.grouping {
		if len(all) > 0 && !all[l] {
			out = append(out, fmt.Sprintf("%s groups by label %s, which none of its metrics has", what, l))
		}
	}
	return out
}

func (c catalogue) check(t *testing.T, what, q string) {
	t.Helper()
	for _, p := range c.problems(what, q) {
		t.Error(p)
	}
}

// The check finds unknown metrics, matchers and grouping labels.
func TestCheckFindsWhatIsNotExported(t *testing.T) {
	c := catalogue{}
	c.add("lethe_datastore_up", "namespace", "datastore", "type")
	for q, want := range map[string]string{
		`lethe_datastore_up{namespace="a"} == 0`:                   "",
		`max by (namespace) (lethe_datastore_upp)`:                 "uses metric lethe_datastore_upp",
		`lethe_datastore_up{store="pg"}`:                           "matches label store",
		`max by (namespace, policy) (lethe_datastore_up)`:          "groups by label policy",
		`sum without (instance) (lethe_datastore_up{job="lethe"})`: "",
	} {
		got := strings.Join(c.problems("q", q), "; ")
		if (want == "") != (got == "") || !strings.Contains(got, want) {
			t.Errorf("problems(%s) = %q; want %q", q, got, want)
		}
	}
}

func keys(m map[string]bool) string {
	var k []string
	for l := range m {
		k = append(k, l)
	}
	sort.Strings(k)
	return strings.Join(k, ", ")
}
