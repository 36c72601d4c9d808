package backlog_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/backlog"
	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/datastore/fake"
	"github.com/lethe-dev/lethe/internal/engine"
)

var now = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func days(n int) time.Time { return now.Add(-time.Duration(n) * 24 * time.Hour) }

// store: logs l1..l6 aged 10, 20, 200, 210, 300, 400 days (user u1 owns
// l5, l6, the others u2); devices d1..d4 aged 50, 100, 150, 200 days (d4
// of u1).
func store() *fake.Driver {
	return fake.New().
		Insert("logs",
			fake.Record{Key: "l1", Time: days(10), Fields: map[string]string{"user_id": "u2"}},
			fake.Record{Key: "l2", Time: days(20), Fields: map[string]string{"user_id": "u2"}},
			fake.Record{Key: "l3", Time: days(200), Fields: map[string]string{"user_id": "u2"}},
			fake.Record{Key: "l4", Time: days(210), Fields: map[string]string{"user_id": "u2"}},
			fake.Record{Key: "l5", Time: days(300), Fields: map[string]string{"user_id": "u1"}},
			fake.Record{Key: "l6", Time: days(400), Fields: map[string]string{"user_id": "u1"}}).
		Insert("devices",
			fake.Record{Key: "d1", Time: days(50), Fields: map[string]string{"user_id": "u2", "ip": "10.0.0.1"}},
			fake.Record{Key: "d2", Time: days(100), Fields: map[string]string{"user_id": "u2", "ip": "10.0.0.2"}},
			fake.Record{Key: "d3", Time: days(150), Fields: map[string]string{"user_id": "u2", "ip": "10.0.0.3"}},
			fake.Record{Key: "d4", Time: days(200), Fields: map[string]string{"user_id": "u1", "ip": "10.0.0.4"}})
}

var (
	logs    = datastore.Collection{Name: "logs", IdentityFields: map[string]string{"user_id": "user_id"}}
	devices = datastore.Collection{Name: "devices", IdentityFields: map[string]string{"user_id": "user_id"}}
	u1      = map[string][]string{"user_id": {"u1"}}
)

func ptr[T any](v T) *T { return &v }

func step(c datastore.Collection, olderThanDays int, held map[string][]string, blockedBy string) engine.Step {
	cutoff := days(olderThanDays)
	return engine.Step{Op: datastore.Operation{Collection: c, Cutoff: &cutoff, Held: held}, BlockedBy: blockedBy}
}

func TestMeasure(t *testing.T) {
	for _, tc := range []struct {
		name    string
		targets []backlog.Target
		// want: rule → records, held; per collection records/held in order.
		want []backlog.Rule
	}{
		{
			name:    "delete rule: records older than the cutoff now",
			targets: []backlog.Target{{Rule: "logs", Step: step(logs, 180, nil, "")}},
			want:    []backlog.Rule{{Name: "logs", Records: 4, Collections: []backlog.Collection{{Name: "logs", Records: 4}}}},
		},
		{
			name:    "nothing past retention",
			targets: []backlog.Target{{Rule: "logs", Step: step(logs, 500, nil, "")}},
			want:    []backlog.Rule{{Name: "logs", Collections: []backlog.Collection{{Name: "logs"}}}},
		},
		{
			name:    "held subject's records are held, not backlog",
			targets: []backlog.Target{{Rule: "logs", Step: step(logs, 180, u1, "")}},
			want:    []backlog.Rule{{Name: "logs", Records: 2, Held: 2, Collections: []backlog.Collection{{Name: "logs", Records: 2, Held: 2}}}},
		},
		{
			name:    "a collection held whole has no backlog",
			targets: []backlog.Target{{Rule: "logs", Step: step(logs, 180, nil, "case-17")}},
			want:    []backlog.Rule{{Name: "logs", Held: 4, Collections: []backlog.Collection{{Name: "logs", Held: 4}}}},
		},
		{
			name: "rule over two collections sums them",
			targets: []backlog.Target{
				{Rule: "all", Step: step(logs, 180, nil, "")},
				{Rule: "all", Step: step(devices, 90, u1, "")},
			},
			want: []backlog.Rule{{Name: "all", Records: 6, Held: 1, Collections: []backlog.Collection{{Name: "logs", Records: 4}, {Name: "devices", Records: 2, Held: 1}}}},
		},
		{
			name:    "anonymize rule never run: every record past retention, estimated",
			targets: []backlog.Target{{Rule: "ip", Anonymize: true, Step: step(devices, 90, nil, "")}},
			want:    []backlog.Rule{{Name: "ip", Estimated: true, Records: 3, Collections: []backlog.Collection{{Name: "devices", Records: 3}}}},
		},
		{
			name:    "anonymize rule: records older than the last run's cutoff were anonymized",
			targets: []backlog.Target{{Rule: "ip", Anonymize: true, Since: ptr(days(120)), Step: step(devices, 90, nil, "")}},
			want:    []backlog.Rule{{Name: "ip", Estimated: true, Since: ptr(days(120)), Records: 1, Collections: []backlog.Collection{{Name: "devices", Records: 1}}}},
		},
		{
			name:    "anonymize rule whose last cutoff is after today's (olderThan raised)",
			targets: []backlog.Target{{Rule: "ip", Anonymize: true, Since: ptr(days(30)), Step: step(devices, 90, nil, "")}},
			want:    []backlog.Rule{{Name: "ip", Estimated: true, Since: ptr(days(30)), Collections: []backlog.Collection{{Name: "devices"}}}},
		},
		{
			name:    "anonymize rule with a held subject: held counted whatever the last run",
			targets: []backlog.Target{{Rule: "ip", Anonymize: true, Since: ptr(days(120)), Step: step(devices, 90, u1, "")}},
			want:    []backlog.Rule{{Name: "ip", Estimated: true, Since: ptr(days(120)), Records: 1, Held: 1, Collections: []backlog.Collection{{Name: "devices", Records: 1, Held: 1}}}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := backlog.Measure(context.Background(), store(), now, tc.targets)
			if err != nil {
				t.Fatal(err)
			}
			if len(m.Rules) != len(tc.want) {
				t.Fatalf("rules %+v, want %+v", m.Rules, tc.want)
			}
			for i, w := range tc.want {
				g := m.Rules[i]
				if g.Name != w.Name || g.Records != w.Records || g.Held != w.Held || g.Estimated != w.Estimated ||
					(g.Since == nil) != (w.Since == nil) || (g.Since != nil && !g.Since.Equal(*w.Since)) ||
					!g.Cutoff.Equal(*tc.targets[0].Step.Op.Cutoff) {
					t.Errorf("rule %+v, want %+v", g, w)
				}
				if len(g.Collections) != len(w.Collections) {
					t.Fatalf("collections %+v, want %+v", g.Collections, w.Collections)
				}
				for k := range w.Collections {
					if g.Collections[k] != w.Collections[k] {
						t.Errorf("collection %+v, want %+v", g.Collections[k], w.Collections[k])
					}
				}
			}
		})
	}
}

// A store that fails fails the measurement: no partial backlog.
func TestMeasureFails(t *testing.T) {
	d := store().Fail("Count", 2, fake.ErrUnavailable)
	_, err := backlog.Measure(context.Background(), d, now, []backlog.Target{
		{Rule: "a", Step: step(logs, 180, nil, "")},
		{Rule: "b", Step: step(devices, 90, nil, "")},
	})
	if !errors.Is(err, datastore.ErrUnavailable) || !strings.Contains(err.Error(), "rule b") {
		t.Errorf("err = %v", err)
	}
}

func op(rule, coll string, action retentionv1.Action, cutoffDays int) retentionv1.Operation {
	c := metav1.NewTime(days(cutoffDays))
	return retentionv1.Operation{Rule: retentionv1.Identifier(rule), Collection: retentionv1.Identifier(coll), Action: action, ByAge: true, Cutoff: &c}
}

func TestAfterRun(t *testing.T) {
	del, anon := retentionv1.ActionDelete, retentionv1.ActionAnonymize
	for _, tc := range []struct {
		name  string
		phase retentionv1.PurgeJobPhase
		ops   []retentionv1.Operation
		st    []retentionv1.OperationStatus
		steps []engine.Step
		want  map[string]map[string]int64
	}{
		{
			name:  "delete run that cleared its cutoff: newer records are not its failure",
			phase: retentionv1.PurgeJobSucceeded,
			ops:   []retentionv1.Operation{op("logs", "logs", del, 500)},
			steps: []engine.Step{step(logs, 500, nil, "")},
			want:  map[string]map[string]int64{"logs": {"logs": 0}},
		},
		{
			name:  "delete run that left records older than its cutoff",
			phase: retentionv1.PurgeJobFailed,
			ops:   []retentionv1.Operation{op("logs", "logs", del, 180)},
			steps: []engine.Step{step(logs, 180, nil, "")},
			want:  map[string]map[string]int64{"logs": {"logs": 4}},
		},
		{
			name:  "held records are not left over",
			phase: retentionv1.PurgeJobSucceeded,
			ops:   []retentionv1.Operation{op("logs", "logs", del, 250)},
			steps: []engine.Step{step(logs, 250, u1, "")},
			want:  map[string]map[string]int64{"logs": {"logs": 0}},
		},
		{
			name:  "collection held whole",
			phase: retentionv1.PurgeJobSucceeded,
			ops:   []retentionv1.Operation{op("logs", "logs", del, 180)},
			st:    []retentionv1.OperationStatus{{Phase: retentionv1.OperationHeld}},
			steps: []engine.Step{step(logs, 180, nil, "case-17")},
			want:  map[string]map[string]int64{"logs": {"logs": 0}},
		},
		{
			name:  "anonymize: from the run's counts",
			phase: retentionv1.PurgeJobFailed,
			ops:   []retentionv1.Operation{op("ip", "devices", anon, 90), op("logs", "logs", del, 500)},
			st:    []retentionv1.OperationStatus{{Phase: retentionv1.PurgeJobFailed, Matched: 3, Anonymized: 1}, {Phase: retentionv1.PurgeJobPending}},
			steps: []engine.Step{step(devices, 90, nil, ""), step(logs, 500, nil, "")},
			want:  map[string]map[string]int64{"ip": {"devices": 2}, "logs": {"logs": 0}},
		},
		{
			name:  "anonymize: succeeded, all matched anonymized",
			phase: retentionv1.PurgeJobSucceeded,
			ops:   []retentionv1.Operation{op("ip", "devices", anon, 90)},
			st:    []retentionv1.OperationStatus{{Phase: retentionv1.PurgeJobSucceeded, Matched: 3, Anonymized: 3}},
			steps: []engine.Step{step(devices, 90, nil, "")},
			want:  map[string]map[string]int64{"ip": {"devices": 0}},
		},
		{
			name:  "anonymize: failed before counting, at most what the store holds",
			phase: retentionv1.PurgeJobFailed,
			ops:   []retentionv1.Operation{op("ip", "devices", anon, 90)},
			steps: []engine.Step{step(devices, 90, nil, "")},
			want:  map[string]map[string]int64{"ip": {"devices": 3}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			job := &retentionv1.PurgeJob{ObjectMeta: metav1.ObjectMeta{Name: "run-1"}}
			job.Spec.Operations = tc.ops
			job.Status.Phase = tc.phase
			job.Status.Operations = tc.st
			got, err := backlog.AfterRun(context.Background(), store(), job, tc.steps)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for rule, colls := range tc.want {
				for c, n := range colls {
					if v, ok := got[rule][c]; !ok || v != n {
						t.Errorf("%s/%s = %d (%v), want %d; all %v", rule, c, v, ok, n, got)
					}
				}
			}
		})
	}
}

func TestAnonymizedBefore(t *testing.T) {
	job := func(name string, phase retentionv1.PurgeJobPhase, mode retentionv1.Mode, cutoffDays int, st ...retentionv1.OperationStatus) retentionv1.PurgeJob {
		j := retentionv1.PurgeJob{ObjectMeta: metav1.ObjectMeta{Name: name}}
		j.Spec.Mode = mode
		j.Spec.Operations = []retentionv1.Operation{op("ip", "devices", retentionv1.ActionAnonymize, cutoffDays), op("logs", "logs", retentionv1.ActionDelete, cutoffDays)}
		j.Status.Phase = phase
		j.Status.Operations = st
		return j
	}
	prev := &retentionv1.Backlog{Rules: []retentionv1.RuleBacklog{{Rule: "ip", AnonymizedBefore: &metav1.Time{Time: days(100)}}}}
	for _, tc := range []struct {
		name string
		jobs []retentionv1.PurgeJob
		prev *retentionv1.Backlog
		want map[string]time.Time
	}{
		{"no run", nil, nil, map[string]time.Time{}},
		{"newest successful enforce run", []retentionv1.PurgeJob{
			job("c", retentionv1.PurgeJobFailed, retentionv1.ModeEnforce, 80),
			job("b", retentionv1.PurgeJobSucceeded, retentionv1.ModeEnforce, 90),
			job("a", retentionv1.PurgeJobSucceeded, retentionv1.ModeEnforce, 95),
		}, nil, map[string]time.Time{"ip": days(90)}},
		{"dry runs anonymize nothing", []retentionv1.PurgeJob{job("a", retentionv1.PurgeJobSucceeded, retentionv1.ModeDryRun, 90)}, nil, map[string]time.Time{}},
		{"a run held whole anonymized nothing", []retentionv1.PurgeJob{job("a", retentionv1.PurgeJobSucceeded, retentionv1.ModeEnforce, 90, retentionv1.OperationStatus{Phase: retentionv1.OperationHeld})}, nil, map[string]time.Time{}},
		{"remembered from status when runs were pruned", nil, prev, map[string]time.Time{"ip": days(100)}},
		{"a newer run wins over status", []retentionv1.PurgeJob{job("b", retentionv1.PurgeJobSucceeded, retentionv1.ModeEnforce, 90)}, prev, map[string]time.Time{"ip": days(90)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := backlog.AnonymizedBefore(tc.jobs, tc.prev)
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				if !got[k].Equal(v) {
					t.Errorf("%s = %s, want %s", k, got[k], v)
				}
			}
		})
	}
}

func TestStatusAndCondition(t *testing.T) {
	m := backlog.Measurement{At: now, Rules: []backlog.Rule{
		{Name: "logs", Cutoff: days(180), Records: 4, Held: 2, Collections: []backlog.Collection{{Name: "logs", Records: 4, Held: 2}}},
		{Name: "ip", Cutoff: days(90), Estimated: true, Since: ptr(days(120)), Records: 1, Collections: []backlog.Collection{{Name: "devices", Records: 1}}},
	}}
	for _, tc := range []struct {
		name       string
		afterRun   map[string]map[string]int64
		dryRun     bool
		status     metav1.ConditionStatus
		reason     string
		msgHas     []string
		msgHasNone []string
	}{
		{"interval count before any run", nil, false, metav1.ConditionUnknown, retentionv1.ReasonBacklogNotMeasured, nil, nil},
		{"cleared", map[string]map[string]int64{"logs": {"logs": 0}, "ip": {"devices": 0}}, false, metav1.ConditionTrue, retentionv1.ReasonBacklogCleared,
			[]string{"run-7", "2 kept by legal holds"}, nil},
		{"remaining names the rules and counts", map[string]map[string]int64{"logs": {"logs": 3}, "ip": {"devices": 0}}, false, metav1.ConditionFalse, retentionv1.ReasonBacklogRemaining,
			[]string{"run-7", "rule logs: 3 (logs 3)"}, []string{"rule ip"}},
		{"dry run", map[string]map[string]int64{"logs": {"logs": 4}, "ip": {"devices": 3}}, true, metav1.ConditionUnknown, retentionv1.ReasonBacklogDryRun,
			[]string{"dry run", "5 records"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := backlog.Status(m, "run-7", tc.afterRun)
			if b.Records != 5 || b.Held != 2 || !b.MeasuredTime.Time.Equal(now) || len(b.Rules) != 2 {
				t.Fatalf("backlog %+v", b)
			}
			logsRule, ipRule := b.Rules[0], b.Rules[1]
			if logsRule.Accuracy != retentionv1.BacklogExact || ipRule.Accuracy != retentionv1.BacklogEstimated ||
				ipRule.AnonymizedBefore == nil || !ipRule.AnonymizedBefore.Time.Equal(days(120)) || !logsRule.Cutoff.Time.Equal(days(180)) ||
				logsRule.Collections[0].Held != 2 {
				t.Errorf("rules %+v", b.Rules)
			}
			if (tc.afterRun == nil) != (b.AfterRun == "" && logsRule.RemainingAfterRun == nil) {
				t.Errorf("afterRun %q, remaining %v", b.AfterRun, logsRule.RemainingAfterRun)
			}
			status, reason, msg := backlog.Condition(b, tc.dryRun)
			if status != tc.status || reason != tc.reason {
				t.Errorf("condition %s %s %q, want %s %s", status, reason, msg, tc.status, tc.reason)
			}
			for _, s := range tc.msgHas {
				if !strings.Contains(msg, s) {
					t.Errorf("message %q lacks %q", msg, s)
				}
			}
			for _, s := range tc.msgHasNone {
				if strings.Contains(msg, s) {
					t.Errorf("message %q has %q", msg, s)
				}
			}
		})
	}
}

// An interval count keeps what the last count after a run found.
func TestCarry(t *testing.T) {
	m := backlog.Measurement{At: now, Rules: []backlog.Rule{{Name: "logs", Records: 9, Collections: []backlog.Collection{{Name: "logs", Records: 9}}}}}
	prev := backlog.Status(m, "run-7", map[string]map[string]int64{"logs": {"logs": 3}})
	next := backlog.Status(backlog.Measurement{At: now.Add(10 * time.Minute), Rules: m.Rules}, "", nil)
	backlog.Carry(next, prev)
	if next.AfterRun != "run-7" || next.Rules[0].RemainingAfterRun == nil || *next.Rules[0].RemainingAfterRun != 3 ||
		*next.Rules[0].Collections[0].RemainingAfterRun != 3 {
		t.Errorf("carried %+v", next)
	}
	if s, r, _ := backlog.Condition(next, false); s != metav1.ConditionFalse || r != retentionv1.ReasonBacklogRemaining {
		t.Errorf("condition after carry: %s %s", s, r)
	}
}

func TestIntervalAndDue(t *testing.T) {
	for in, want := range map[retentionv1.BacklogInterval]time.Duration{"": 10 * time.Minute, "0s": 0, "1m": time.Minute, "90s": 90 * time.Second, "168h": 168 * time.Hour} {
		if got, err := backlog.Interval(in); err != nil || got != want {
			t.Errorf("Interval(%q) = %s, %v; want %s", in, got, err, want)
		}
	}
	for _, bad := range []retentionv1.BacklogInterval{"30s", "169h", "-1m", "ten"} {
		if _, err := backlog.Interval(bad); err == nil {
			t.Errorf("Interval(%q) accepted", bad)
		}
	}

	measured := &retentionv1.Backlog{MeasuredTime: metav1.NewTime(now.Add(-4 * time.Minute)), AfterRun: "run-1"}
	finished := &retentionv1.PurgeJob{ObjectMeta: metav1.ObjectMeta{Name: "run-2"}}
	finished.Status.Phase = retentionv1.PurgeJobSucceeded
	counted := &retentionv1.PurgeJob{ObjectMeta: metav1.ObjectMeta{Name: "run-1"}}
	counted.Status.Phase = retentionv1.PurgeJobSucceeded
	running := &retentionv1.PurgeJob{ObjectMeta: metav1.ObjectMeta{Name: "run-2"}}
	running.Status.Phase = retentionv1.PurgeJobRunning
	for _, tc := range []struct {
		name          string
		b             *retentionv1.Backlog
		last          *retentionv1.PurgeJob
		interval      time.Duration
		due, afterRun bool
		wait          time.Duration
	}{
		{"never counted", nil, nil, 10 * time.Minute, true, false, 10 * time.Minute},
		{"a run finished", measured, finished, 10 * time.Minute, true, true, 10 * time.Minute},
		{"the finished run was counted", measured, counted, 10 * time.Minute, false, false, 6 * time.Minute},
		{"a run still running", measured, running, 10 * time.Minute, false, false, 6 * time.Minute},
		{"interval passed", measured, counted, 3 * time.Minute, true, false, 3 * time.Minute},
		{"only after runs", measured, counted, 0, false, false, 0},
		{"only after runs, one finished", measured, finished, 0, true, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			due, afterRun, wait := backlog.Due(tc.b, tc.last, tc.interval, now)
			if due != tc.due || afterRun != tc.afterRun || wait != tc.wait {
				t.Errorf("Due = %v %v %s, want %v %v %s", due, afterRun, wait, tc.due, tc.afterRun, tc.wait)
			}
		})
	}
}

func TestSameRules(t *testing.T) {
	b := &retentionv1.Backlog{Rules: []retentionv1.RuleBacklog{{Rule: "a"}, {Rule: "b"}}}
	policy := func(names ...retentionv1.Identifier) *retentionv1.RetentionPolicy {
		p := &retentionv1.RetentionPolicy{}
		for _, n := range names {
			p.Spec.Rules = append(p.Spec.Rules, retentionv1.RetentionRule{Name: n})
		}
		return p
	}
	for _, tc := range []struct {
		p    *retentionv1.RetentionPolicy
		want bool
	}{
		{policy("b", "a"), true},
		{policy("a"), false},
		{policy("a", "c"), false},
		{policy("a", "b", "c"), false},
	} {
		if got := backlog.SameRules(b, tc.p); got != tc.want {
			t.Errorf("SameRules(%v) = %v, want %v", tc.p.Spec.Rules, got, tc.want)
		}
	}
}
