package controllers_test

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/controllers"
)

// shop is a small application schema: users, their devices (IP addresses,
// anonymized after 90 days) and browsing logs (deleted after 180 days).
// Row ages are relative to the real now, since policies cut at run time.
func seedShop(t *testing.T, conn *pgx.Conn) {
	t.Helper()
	mustExec(t, conn, `CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL)`)
	mustExec(t, conn, `CREATE TABLE devices (id bigint PRIMARY KEY, user_id bigint NOT NULL REFERENCES users(id), ip inet, device_id text, seen_at timestamptz NOT NULL)`)
	mustExec(t, conn, `CREATE TABLE browsing_logs (id bigint PRIMARY KEY, user_id bigint NOT NULL REFERENCES users(id), url text, viewed_at timestamptz NOT NULL)`)
	mustExec(t, conn, `INSERT INTO users SELECT i, 'u' || i || '@example.com' FROM generate_series(1, 20) i`)
	// Ages sit half a day off whole days, so no row crosses a boundary while
	// the test runs. devices: 100 rows, aged 2i − ½ days → 54 older than 90d
	// (i = 46..99). browsing_logs: 300 rows, aged i − ½ days → 119 older than
	// 180d (i = 181..299).
	mustExec(t, conn, `INSERT INTO devices SELECT i, 1 + i % 20, ('10.1.' || i || '.77')::inet, 'dev-' || i, now() - (2 * i || ' days')::interval + interval '12 hours' FROM generate_series(0, 99) i`)
	mustExec(t, conn, `INSERT INTO browsing_logs SELECT i, 1 + i % 20, '/p/' || i, now() - (i || ' days')::interval + interval '12 hours' FROM generate_series(0, 299) i`)
}

func shopDataset(ns string) *retentionv1.Dataset {
	return &retentionv1.Dataset{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "shop"},
		Spec: retentionv1.DatasetSpec{
			DataStoreRef: retentionv1.LocalObjectReference{Name: "db"},
			Collections: []retentionv1.Collection{
				{Name: "users", Identities: []retentionv1.IdentityField{{Type: "user_id", Field: "id"}, {Type: "email", Field: "email"}}},
				{Name: "devices", TimestampField: "seen_at", Identities: []retentionv1.IdentityField{{Type: "user_id", Field: "user_id"}},
					Fields: []retentionv1.DataField{
						{Name: "ip", Categories: []retentionv1.Category{"device"}, Anonymize: &retentionv1.Anonymization{Strategy: retentionv1.StrategyGeneralize}},
						{Name: "device_id", Categories: []retentionv1.Category{"device"}, Anonymize: &retentionv1.Anonymization{Strategy: retentionv1.StrategyNull}},
					},
					References: []retentionv1.Reference{{Field: "user_id", Collection: "users", TargetField: "id"}}},
				{Name: "browsing_logs", TimestampField: "viewed_at", Categories: []retentionv1.Category{"browsing"},
					Identities: []retentionv1.IdentityField{{Type: "user_id", Field: "user_id"}},
					References: []retentionv1.Reference{{Field: "user_id", Collection: "users", TargetField: "id"}}},
			},
		},
	}
}

func shopPolicy(ns string) *retentionv1.RetentionPolicy {
	return &retentionv1.RetentionPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "privacy-policy"},
		Spec: retentionv1.RetentionPolicySpec{
			DatasetRef: retentionv1.LocalObjectReference{Name: "shop"},
			Mode:       retentionv1.ModeEnforce,
			Schedule:   "0 3 * * *",
			TimeZone:   "Asia/Shanghai",
			BatchSize:  25,
			Rules: []retentionv1.RetentionRule{
				{Name: "browsing", Categories: []retentionv1.Category{"browsing"}, OlderThan: "180d", Action: retentionv1.ActionDelete},
				{Name: "devices", Categories: []retentionv1.Category{"device"}, OlderThan: "90d", Action: retentionv1.ActionAnonymize},
			},
		},
	}
}

func shopFixture(t *testing.T) (string, *pgx.Conn) {
	t.Helper()
	ns := namespace(t)
	pg := postgresStore(t, ns, "db")
	conn, err := pgx.Connect(context.Background(), pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	seedShop(t, conn)
	create(t, shopDataset(ns))
	return ns, conn
}

// runNow sets the run-now annotation to a new token.
func runNow(t *testing.T, ns, name, token string) {
	t.Helper()
	var p retentionv1.RetentionPolicy
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &p); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(p.DeepCopy())
	if p.Annotations == nil {
		p.Annotations = map[string]string{}
	}
	p.Annotations[retentionv1.AnnotationRunNow] = token
	if err := env.Client.Patch(context.Background(), &p, patch); err != nil {
		t.Fatal(err)
	}
}

func annotate(t *testing.T, obj client.Object, key, value string) {
	t.Helper()
	if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(obj), obj); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(obj.DeepCopyObject().(client.Object))
	a := obj.GetAnnotations()
	if a == nil {
		a = map[string]string{}
	}
	a[key] = value
	obj.SetAnnotations(a)
	if err := env.Client.Patch(context.Background(), obj, patch); err != nil {
		t.Fatal(err)
	}
}

func waitLastRun(t *testing.T, ns, name string, cond func(*retentionv1.RetentionPolicy) bool, what string) *retentionv1.RetentionPolicy {
	t.Helper()
	return waitFor(t, &retentionv1.RetentionPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}, 90*time.Second, what, cond)
}

func TestRetentionPolicyPurgesAndAnonymizesExpiredRecords(t *testing.T) {
	startManager(t, controllers.Options{})
	ns, conn := shopFixture(t)
	create(t, shopPolicy(ns))
	runNow(t, ns, "privacy-policy", "first")

	// kubectl wait --for=condition=Ready, with the real kubectl, returns once the run is done.
	dir := t.TempDir()
	kubeconfig, err := env.Kubeconfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // let the run start, so Ready first goes False
	out, err := exec.Command(filepath.Join(env.Root, "bin", "k8s", "kubectl"), "--kubeconfig", kubeconfig, "-n", ns,
		"wait", "--for=condition=Ready", "retentionpolicy/privacy-policy", "--timeout=90s").CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl wait: %v: %s", err, out)
	}
	p := waitLastRun(t, ns, "privacy-policy", func(p *retentionv1.RetentionPolicy) bool {
		return p.Status.LastRun != nil && p.Status.LastRun.Result == retentionv1.PurgeJobSucceeded
	}, "last run Succeeded")

	if got := count(t, conn, `SELECT count(*) FROM browsing_logs WHERE viewed_at < now() - interval '180 days'`); got != 0 {
		t.Errorf("%d expired browsing logs left", got)
	}
	if got := count(t, conn, `SELECT count(*) FROM browsing_logs`); got != 181 {
		t.Errorf("%d browsing logs left, want 181 (aged under 180 days)", got)
	}
	// Old devices: IP generalized to /24, device_id nulled; young devices untouched.
	rows, err := conn.Query(context.Background(), `SELECT id, ip, device_id, seen_at < now() - interval '90 days' FROM devices ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	anonymized := 0
	for rows.Next() {
		var id int64
		var ip netip.Prefix
		var device *string
		var old bool
		if err := rows.Scan(&id, &ip, &device, &old); err != nil {
			t.Fatal(err)
		}
		if old {
			anonymized++
			if ip.Addr().String() != fmt.Sprintf("10.1.%d.0", id) || device != nil {
				t.Errorf("device %d not anonymized: ip %s device %v", id, ip, device)
			}
		} else if ip.Addr().String() != fmt.Sprintf("10.1.%d.77", id) || device == nil {
			t.Errorf("young device %d was touched: ip %s", id, ip)
		}
	}
	rows.Close()
	if anonymized != 54 {
		t.Errorf("%d old devices, want 54", anonymized)
	}
	run := p.Status.LastRun
	if run.RowsDeleted != 119 || run.RowsAnonymized != 54 || run.RowsMatched != 173 {
		t.Errorf("lastRun = %+v, want 119 deleted, 54 anonymized, 173 matched", run)
	}
	if !hasCondition(p, retentionv1.ConditionReady, metav1.ConditionTrue, retentionv1.ReasonScheduled) || p.Status.NextScheduleTime == nil || p.Status.LastSuccessfulTime == nil {
		t.Errorf("status after the run: %+v", p.Status)
	}
	// kubectl get shows the counts in the Rows column.
	out, err = exec.Command(filepath.Join(env.Root, "bin", "k8s", "kubectl"), "--kubeconfig", kubeconfig, "-n", ns, "get", "retentionpolicies").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "173") || !strings.Contains(string(out), "Enforce") {
		t.Errorf("kubectl get retentionpolicies: %v\n%s", err, out)
	}
	t.Logf("kubectl get retentionpolicies:\n%s", out)
}

func TestRetentionPolicyHeldSubjectSurvivesUntilTheHoldExpires(t *testing.T) {
	startManager(t, controllers.Options{})
	ns, conn := shopFixture(t)
	create(t, &retentionv1.LegalHold{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "litigation"},
		Spec: retentionv1.LegalHoldSpec{Reason: "Case 2026-17", Subjects: []retentionv1.SubjectIdentity{{Type: "user_id", Value: "3"}},
			ExpiresAt: &metav1.Time{Time: time.Now().Add(6 * time.Second)}},
	})
	held := count(t, conn, `SELECT count(*) FROM browsing_logs WHERE user_id = 3 AND viewed_at < now() - interval '180 days'`)
	if held == 0 {
		t.Fatal("fixture has no expired rows of the held subject")
	}
	p := shopPolicy(ns)
	p.Spec.Rules = p.Spec.Rules[:1]
	create(t, p)
	runNow(t, ns, p.Name, "while-held")
	waitLastRun(t, ns, p.Name, func(p *retentionv1.RetentionPolicy) bool {
		return p.Status.LastRun != nil && p.Status.LastRun.Result == retentionv1.PurgeJobSucceeded
	}, "held run Succeeded")
	if got := count(t, conn, `SELECT count(*) FROM browsing_logs WHERE user_id = 3 AND viewed_at < now() - interval '180 days'`); got != held {
		t.Fatalf("held subject lost rows while the hold was active: %d of %d left", got, held)
	}
	if got := count(t, conn, `SELECT count(*) FROM browsing_logs WHERE user_id <> 3 AND viewed_at < now() - interval '180 days'`); got != 0 {
		t.Fatalf("%d expired rows of others left", got)
	}

	time.Sleep(time.Until(time.Now().Add(6 * time.Second)))
	runNow(t, ns, p.Name, "after-expiry")
	waitLastRun(t, ns, p.Name, func(p *retentionv1.RetentionPolicy) bool {
		return p.Status.LastRun != nil && p.Status.LastRun.Result == retentionv1.PurgeJobSucceeded && p.Status.LastRun.RowsDeleted == held
	}, "the run after expiry deleted the held rows")
	if got := count(t, conn, `SELECT count(*) FROM browsing_logs WHERE viewed_at < now() - interval '180 days'`); got != 0 {
		t.Errorf("%d expired rows left after the hold expired", got)
	}
}

func TestRetentionPolicySafetyLimitReleasesExactlyOneRun(t *testing.T) {
	startManager(t, controllers.Options{})
	ns, conn := shopFixture(t)
	p := shopPolicy(ns)
	p.Spec.Rules = p.Spec.Rules[:1]
	p.Spec.Safety = &retentionv1.SafetyLimits{MaxRows: ptr.To(int64(50))}
	create(t, p)
	runNow(t, ns, p.Name, "one")
	stalled := waitLastRun(t, ns, p.Name, func(p *retentionv1.RetentionPolicy) bool {
		return hasCondition(p, retentionv1.ConditionStalled, metav1.ConditionTrue, retentionv1.ReasonSafetyLimitExceeded)
	}, "policy Stalled/SafetyLimitExceeded")
	if got := count(t, conn, `SELECT count(*) FROM browsing_logs`); got != 300 {
		t.Fatalf("a run over its safety limit touched the store: %d rows of 300", got)
	}
	first := stalled.Status.LastRun.PurgeJob
	annotate(t, &retentionv1.RetentionPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: p.Name}}, retentionv1.AnnotationReleaseRun, first)
	waitLastRun(t, ns, p.Name, func(p *retentionv1.RetentionPolicy) bool {
		return p.Status.LastRun != nil && p.Status.LastRun.PurgeJob == first && p.Status.LastRun.Result == retentionv1.PurgeJobSucceeded &&
			hasCondition(p, retentionv1.ConditionReady, metav1.ConditionTrue, "")
	}, "released run Succeeded")
	if got := count(t, conn, `SELECT count(*) FROM browsing_logs`); got != 181 {
		t.Fatalf("%d rows after the released run, want 181", got)
	}

	// New expired data; the next run is stopped again although the release
	// annotation still names the first run.
	mustExec(t, conn, `INSERT INTO browsing_logs SELECT 1000 + i, 1, '/old', now() - interval '400 days' FROM generate_series(1, 60) i`)
	runNow(t, ns, p.Name, "two")
	again := waitLastRun(t, ns, p.Name, func(p *retentionv1.RetentionPolicy) bool {
		return p.Status.LastRun != nil && p.Status.LastRun.PurgeJob != first &&
			hasCondition(p, retentionv1.ConditionStalled, metav1.ConditionTrue, retentionv1.ReasonSafetyLimitExceeded)
	}, "second run stalled again")
	if got := count(t, conn, `SELECT count(*) FROM browsing_logs`); got != 241 {
		t.Errorf("the second run touched the store: %d rows, want 241", got)
	}
	if !strings.Contains(condition(again, retentionv1.ConditionStalled).Message, again.Status.LastRun.PurgeJob) {
		t.Errorf("the Stalled message should name the run to release: %q", condition(again, retentionv1.ConditionStalled).Message)
	}
}

func TestRetentionPolicyNextScheduleTimeInTimeZones(t *testing.T) {
	cases := []struct {
		name, schedule, zone string
		now, want            time.Time
	}{
		{"shanghai daily 03:00", "0 3 * * *", "Asia/Shanghai", time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC), time.Date(2026, 11, 22, 19, 0, 0, 0, time.UTC)},
		{"berlin before spring-forward", "0 3 * * *", "Europe/Berlin", time.Date(2026, 3, 28, 12, 0, 0, 0, time.UTC), time.Date(2026, 3, 29, 1, 0, 0, 0, time.UTC)},
		{"berlin before fall-back", "0 3 * * *", "Europe/Berlin", time.Date(2026, 10, 24, 12, 0, 0, 0, time.UTC), time.Date(2026, 10, 25, 2, 0, 0, 0, time.UTC)},
		{"new york across spring-forward", "0 3 * * *", "America/New_York", time.Date(2026, 3, 7, 12, 0, 0, 0, time.UTC), time.Date(2026, 3, 8, 7, 0, 0, 0, time.UTC)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			now := tc.now
			startManagerWithClock(t, controllers.Options{}, func() time.Time { return now })
			ns := namespace(t)
			postgresStore(t, ns, "db")
			create(t, shopDataset(ns))
			p := shopPolicy(ns)
			p.Spec.Schedule = retentionv1.CronSchedule(tc.schedule)
			p.Spec.TimeZone = retentionv1.TimeZone(tc.zone)
			create(t, p)
			got := waitLastRun(t, ns, p.Name, func(p *retentionv1.RetentionPolicy) bool { return p.Status.NextScheduleTime != nil }, "nextScheduleTime")
			if !got.Status.NextScheduleTime.Time.Equal(tc.want) {
				t.Errorf("nextScheduleTime = %s, want %s", got.Status.NextScheduleTime.UTC().Format(time.RFC3339), tc.want.Format(time.RFC3339))
			}
		})
	}
}
