package controllers_test

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/controllers"
)

func ruleBacklog(p *retentionv1.RetentionPolicy, rule string) *retentionv1.RuleBacklog {
	if p.Status.Backlog == nil {
		return nil
	}
	for i := range p.Status.Backlog.Rules {
		if string(p.Status.Backlog.Rules[i].Rule) == rule {
			return &p.Status.Backlog.Rules[i]
		}
	}
	return nil
}

// The backlog an auditor asks for, against PostgreSQL: counted when the
// policy is created and after each run (a trigger that refuses deletes
// fails a run, which leaves every record past retention:
// BacklogCleared False, naming the rules and counts), with a legal hold's
// records reported as held and never as backlog.
func TestRetentionPolicyBacklog(t *testing.T) {
	startManager(t, controllers.Options{})
	ns, conn := shopFixture(t)
	// The store refuses every delete (an integrity error in the run's first
	// batch: the run fails before changing anything).
	mustExec(t, conn, `CREATE FUNCTION keep_rows() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'kept' USING ERRCODE = 'check_violation'; END $$`)
	mustExec(t, conn, `CREATE TRIGGER keep_rows BEFORE DELETE ON browsing_logs FOR EACH ROW EXECUTE FUNCTION keep_rows()`)
	create(t, &retentionv1.LegalHold{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "litigation"},
		Spec:       retentionv1.LegalHoldSpec{Reason: "Case 2026-17", Subjects: []retentionv1.SubjectIdentity{{Type: "user_id", Value: "3"}}},
	})
	waitFor(t, &retentionv1.LegalHold{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "litigation"}}, 60*time.Second, "hold Active",
		func(h *retentionv1.LegalHold) bool { return h.Status.Phase == retentionv1.HoldActive })
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		var jobs retentionv1.PurgeJobList
		if err := env.Client.List(context.Background(), &jobs, client.InNamespace(ns)); err == nil {
			for _, j := range jobs.Items {
				t.Logf("PurgeJob %s: %+v", j.Name, j.Status)
			}
		}
	})
	heldLogs := count(t, conn, `SELECT count(*) FROM browsing_logs WHERE user_id = 3 AND viewed_at < now() - interval '180 days'`)
	heldDevices := count(t, conn, `SELECT count(*) FROM devices WHERE user_id = 3 AND seen_at < now() - interval '90 days'`)
	if heldLogs == 0 || heldDevices == 0 {
		t.Fatal("fixture has no expired rows of the held subject")
	}

	p := shopPolicy(ns)
	create(t, p)
	// Counted at creation, before any run.
	got := waitLastRun(t, ns, p.Name, func(p *retentionv1.RetentionPolicy) bool { return p.Status.Backlog != nil }, "a first backlog count")
	logs, devices := ruleBacklog(got, "browsing"), ruleBacklog(got, "devices")
	if logs == nil || logs.Records != 119-heldLogs || logs.Held != heldLogs || logs.Accuracy != retentionv1.BacklogExact || logs.RemainingAfterRun != nil ||
		len(logs.Collections) != 1 || logs.Collections[0].Collection != "browsing_logs" || logs.Collections[0].Records != logs.Records {
		t.Errorf("browsing backlog before any run: %+v", logs)
	}
	if devices == nil || devices.Records != 54-heldDevices || devices.Held != heldDevices || devices.Accuracy != retentionv1.BacklogEstimated || devices.AnonymizedBefore != nil {
		t.Errorf("devices backlog before any run: %+v", devices)
	}
	if b := got.Status.Backlog; b.Records != logs.Records+devices.Records || b.Held != heldLogs+heldDevices || b.AfterRun != "" {
		t.Errorf("backlog before any run: %+v", b)
	}
	if !hasCondition(got, retentionv1.ConditionBacklogCleared, metav1.ConditionUnknown, retentionv1.ReasonBacklogNotMeasured) {
		t.Errorf("BacklogCleared before any run: %+v", condition(got, retentionv1.ConditionBacklogCleared))
	}
	if cutoff := logs.MeasuredTime.AddDate(0, 0, -180); !logs.Cutoff.Time.Equal(cutoff) {
		t.Errorf("cutoff %s, want measuredTime − 180d = %s", logs.Cutoff, cutoff)
	}

	// A run that fails leaves everything: the condition names the rules.
	runNow(t, ns, p.Name, "first")
	got = waitLastRun(t, ns, p.Name, func(p *retentionv1.RetentionPolicy) bool {
		return p.Status.LastRun != nil && p.Status.LastRun.Result == retentionv1.PurgeJobFailed &&
			p.Status.Backlog != nil && p.Status.Backlog.AfterRun == p.Status.LastRun.PurgeJob
	}, "a backlog count after the first run")
	first := got.Status.LastRun.PurgeJob
	wantLogs, wantDevices := 119-heldLogs, 54-heldDevices
	logs, devices = ruleBacklog(got, "browsing"), ruleBacklog(got, "devices")
	if logs.RemainingAfterRun == nil || *logs.RemainingAfterRun != wantLogs || logs.Records != wantLogs || logs.Held != heldLogs ||
		logs.Collections[0].RemainingAfterRun == nil || *logs.Collections[0].RemainingAfterRun != wantLogs {
		t.Errorf("browsing backlog after the failed run: %+v", logs)
	}
	if devices.RemainingAfterRun == nil || *devices.RemainingAfterRun != wantDevices || devices.Records != wantDevices || devices.Held != heldDevices || devices.AnonymizedBefore != nil {
		t.Errorf("devices backlog after the failed run: %+v", devices)
	}
	c := condition(got, retentionv1.ConditionBacklogCleared)
	if !hasCondition(got, retentionv1.ConditionBacklogCleared, metav1.ConditionFalse, retentionv1.ReasonBacklogRemaining) || !strings.Contains(c.Message, first) ||
		!strings.Contains(c.Message, fmt.Sprintf("rule browsing: %d (browsing_logs %d)", wantLogs, wantLogs)) ||
		!strings.Contains(c.Message, fmt.Sprintf("rule devices: %d (devices %d)", wantDevices, wantDevices)) {
		t.Errorf("BacklogCleared after the failed run: %+v", c)
	}
	// kubectl get shows the total backlog.
	kubeconfig, err := env.Kubeconfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(env.Root, "bin", "k8s", "kubectl"), "--kubeconfig", kubeconfig, "-n", ns, "get", "retentionpolicy", p.Name).CombinedOutput()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if err != nil || len(lines) != 2 || column(lines, "BACKLOG") != fmt.Sprint(wantLogs+wantDevices) {
		t.Errorf("kubectl get retentionpolicy: %v\n%s", err, out)
	}

	// The store lets the rows go: the next run clears the backlog (the
	// anonymized devices no longer count), held records stay held.
	mustExec(t, conn, `DROP TRIGGER keep_rows ON browsing_logs`)
	runNow(t, ns, p.Name, "second")
	got = waitLastRun(t, ns, p.Name, func(p *retentionv1.RetentionPolicy) bool {
		return p.Status.LastRun != nil && p.Status.LastRun.PurgeJob != first && p.Status.LastRun.Result == retentionv1.PurgeJobSucceeded &&
			p.Status.Backlog != nil && p.Status.Backlog.AfterRun == p.Status.LastRun.PurgeJob
	}, "a backlog count after the second run")
	logs, devices = ruleBacklog(got, "browsing"), ruleBacklog(got, "devices")
	if logs.Records != 0 || *logs.RemainingAfterRun != 0 || logs.Held != heldLogs || got.Status.Backlog.Records != 0 || got.Status.Backlog.Held != heldLogs+heldDevices {
		t.Errorf("backlog after the second run: %+v", got.Status.Backlog)
	}
	if devices.Records != 0 || *devices.RemainingAfterRun != 0 || devices.AnonymizedBefore == nil ||
		!devices.AnonymizedBefore.Time.Equal(got.Status.LastRun.ScheduledTime.AddDate(0, 0, -90)) {
		t.Errorf("devices backlog after the second run: %+v", devices)
	}
	c = condition(got, retentionv1.ConditionBacklogCleared)
	if !hasCondition(got, retentionv1.ConditionBacklogCleared, metav1.ConditionTrue, retentionv1.ReasonBacklogCleared) || !strings.Contains(c.Message, "kept by legal holds") {
		t.Errorf("BacklogCleared after the second run: %+v", c)
	}
	if n := count(t, conn, `SELECT count(*) FROM browsing_logs WHERE user_id = 3 AND viewed_at < now() - interval '180 days'`); n != heldLogs {
		t.Errorf("held rows: %d of %d left", n, heldLogs)
	}
}

// column returns the value under header in kubectl's table output.
func column(lines []string, header string) string {
	i := strings.Index(lines[0], header)
	if i < 0 || i >= len(lines[1]) {
		return ""
	}
	f := strings.Fields(lines[1][i:])
	if len(f) == 0 {
		return ""
	}
	return f[0]
}
