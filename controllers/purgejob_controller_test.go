package controllers_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/controllers"
	"github.com/lethe-dev/lethe/internal/mask"
	"github.com/lethe-dev/lethe/internal/testharness"
)

// The fixture: table events(id, user_id, email, ts). Rows 1..n; row i has
// user_id i%10 and is dated base + (i - expired) minutes, so exactly `expired`
// rows lie strictly before the cutoff `base`.
var base = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

func seedEvents(t *testing.T, pg testharness.PG, n, expired int) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	mustExec(t, conn, `CREATE TABLE events (id bigint PRIMARY KEY, user_id text NOT NULL, email text, ts timestamptz NOT NULL)`)
	mustExec(t, conn, `INSERT INTO events SELECT i, (i % 10)::text, 'user' || i || '@example.com', $1::timestamptz + ((i - $2) * interval '1 minute') FROM generate_series(1, $3) i`, base, expired+1, n)
	return conn
}

func mustExec(t *testing.T, conn *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := conn.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func count(t *testing.T, conn *pgx.Conn, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := conn.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func eventsDataset(ns string) *retentionv1.Dataset {
	return &retentionv1.Dataset{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app"},
		Spec: retentionv1.DatasetSpec{
			DataStoreRef:     retentionv1.LocalObjectReference{Name: "db"},
			HMACKeySecretRef: &retentionv1.SecretKeySelector{Name: "hmac", Key: "key"},
			Collections: []retentionv1.Collection{{
				Name:           "events",
				TimestampField: "ts",
				Identities:     []retentionv1.IdentityField{{Type: "user_id", Field: "user_id"}, {Type: "email", Field: "email"}},
				Fields: []retentionv1.DataField{{Name: "email", Categories: []retentionv1.Category{"contact"},
					Anonymize: &retentionv1.Anonymization{Strategy: retentionv1.StrategyHMAC}}},
			}},
		},
	}
}

const hmacKey = "0123456789abcdef0123456789abcdef"

// fixture creates the namespace, store, dataset and table.
func fixture(t *testing.T, n, expired int) (string, *pgx.Conn) {
	t.Helper()
	ns := namespace(t)
	pg := postgresStore(t, ns, "db")
	conn := seedEvents(t, pg, n, expired)
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hmac", Labels: marked()}, StringData: map[string]string{"key": hmacKey}})
	create(t, eventsDataset(ns))
	return ns, conn
}

func deleteJob(ns, name string, mode retentionv1.Mode) *retentionv1.PurgeJob {
	return &retentionv1.PurgeJob{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: retentionv1.PurgeJobSpec{
			DatasetRef: retentionv1.LocalObjectReference{Name: "app"},
			Mode:       mode,
			Cutoff:     &metav1.Time{Time: base},
			BatchSize:  100,
			Operations: []retentionv1.Operation{{Collection: "events", Action: retentionv1.ActionDelete, ByAge: true}},
		},
	}
}

func waitPhase(t *testing.T, ns, name string, phase retentionv1.PurgeJobPhase) *retentionv1.PurgeJob {
	t.Helper()
	return waitFor(t, &retentionv1.PurgeJob{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}, 60*time.Second, "phase "+string(phase),
		func(j *retentionv1.PurgeJob) bool { return j.Status.Phase == phase })
}

func TestPurgeJobDeletesExactlyTheExpiredRows(t *testing.T) {
	startManager(t, controllers.Options{})
	ns, conn := fixture(t, 1000, 437)

	createJob(t, deleteJob(ns, "run", retentionv1.ModeEnforce))
	job := waitPhase(t, ns, "run", retentionv1.PurgeJobSucceeded)

	if job.Status.Matched != 437 || job.Status.Deleted != 437 || job.Status.Operations[0].Deleted != 437 {
		t.Errorf("status matched %d deleted %d (op %d), want 437", job.Status.Matched, job.Status.Deleted, job.Status.Operations[0].Deleted)
	}
	// Nothing was recounted: the totals are the batches' own, and what is
	// left is not counted again (safety.verifyCounts AfterRecount).
	if c := condition(job, retentionv1.ConditionCountsVerified); c == nil || c.Status != metav1.ConditionTrue || c.Reason != retentionv1.ReasonCountedByBatches ||
		!strings.HasPrefix(c.Message, "437 deleted and 0 anonymized, each the sum of the counts the store returned inside the committed batches") {
		t.Errorf("CountsVerified %+v", c)
	}
	if got := count(t, conn, `SELECT count(*) FROM events WHERE ts < $1`, base); got != 0 {
		t.Errorf("%d expired rows left in the store", got)
	}
	if got := count(t, conn, `SELECT count(*) FROM events`); got != 1000-437 {
		t.Errorf("%d rows left, want %d: rows at or after the cutoff were touched", got, 1000-437)
	}
	if !hasCondition(job, retentionv1.ConditionReady, metav1.ConditionTrue, retentionv1.ReasonSucceeded) || condition(job, retentionv1.ConditionReconciling) != nil {
		t.Errorf("conditions of a finished job: %+v", job.Status.Conditions)
	}
	if job.Status.Operations[0].Batches < 5 {
		t.Errorf("batches = %d, want ≥ 5 for 437 rows at batchSize 100", job.Status.Operations[0].Batches)
	}
	assertEvent(t, ns, "run", "Started")
	assertEvent(t, ns, "run", retentionv1.ReasonSucceeded)
}

func TestPurgeJobDryRunCountsWhatEnforceDeletes(t *testing.T) {
	startManager(t, controllers.Options{})
	ns, conn := fixture(t, 500, 123)

	createJob(t, deleteJob(ns, "dry", retentionv1.ModeDryRun))
	dry := waitPhase(t, ns, "dry", retentionv1.PurgeJobSucceeded)
	if got := count(t, conn, `SELECT count(*) FROM events`); got != 500 {
		t.Fatalf("a dry run changed the store: %d rows left of 500", got)
	}
	if !hasCondition(dry, retentionv1.ConditionReady, metav1.ConditionTrue, retentionv1.ReasonDryRunCompleted) {
		t.Errorf("dry run conditions: %+v", dry.Status.Conditions)
	}

	createJob(t, deleteJob(ns, "real", retentionv1.ModeEnforce))
	real := waitPhase(t, ns, "real", retentionv1.PurgeJobSucceeded)
	if dry.Status.Matched != 123 || real.Status.Deleted != dry.Status.Matched {
		t.Errorf("dry run matched %d, real run deleted %d, want both 123", dry.Status.Matched, real.Status.Deleted)
	}
}

func TestPurgeJobSafetyLimitStopsBeforeTouchingAnything(t *testing.T) {
	startManager(t, controllers.Options{})
	ns, conn := fixture(t, 300, 200)

	job := deleteJob(ns, "big", retentionv1.ModeEnforce)
	job.Spec.Safety = &retentionv1.SafetyLimits{MaxRows: ptr.To(int64(50))}
	createJob(t, job)
	stalled := waitPhase(t, ns, "big", retentionv1.PurgeJobStalled)
	if !hasCondition(stalled, retentionv1.ConditionStalled, metav1.ConditionTrue, retentionv1.ReasonSafetyLimitExceeded) ||
		!hasCondition(stalled, retentionv1.ConditionReady, metav1.ConditionFalse, retentionv1.ReasonSafetyLimitExceeded) {
		t.Fatalf("conditions: %+v", stalled.Status.Conditions)
	}
	if got := count(t, conn, `SELECT count(*) FROM events`); got != 300 {
		t.Fatalf("a stalled job touched the store: %d rows left of 300", got)
	}

	// A percentage limit stops too (200 of 300 is 66%).
	pct := deleteJob(ns, "pct", retentionv1.ModeEnforce)
	pct.Spec.Safety = &retentionv1.SafetyLimits{MaxPercent: ptr.To(int32(50))}
	createJob(t, pct)
	waitPhase(t, ns, "pct", retentionv1.PurgeJobStalled)

	// Releasing the first job lets exactly that job proceed.
	patch := client.MergeFrom(stalled.DeepCopy())
	stalled.Annotations[retentionv1.AnnotationReleaseSafetyLimit] = "true"
	if err := env.Client.Patch(context.Background(), stalled, patch); err != nil {
		t.Fatal(err)
	}
	done := waitPhase(t, ns, "big", retentionv1.PurgeJobSucceeded)
	if done.Status.Deleted != 200 || count(t, conn, `SELECT count(*) FROM events`) != 100 {
		t.Errorf("released job deleted %d, want 200", done.Status.Deleted)
	}
	if condition(done, retentionv1.ConditionStalled) != nil {
		t.Errorf("Stalled must be gone after success: %+v", done.Status.Conditions)
	}
	var still retentionv1.PurgeJob
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "pct"}, &still); err != nil || still.Status.Phase != retentionv1.PurgeJobStalled {
		t.Errorf("the other stalled job must stay stalled: %v %s", err, still.Status.Phase)
	}
}

func TestPurgeJobHeldSubjectsSurvive(t *testing.T) {
	startManager(t, controllers.Options{})
	ns, conn := fixture(t, 400, 300)
	create(t, &retentionv1.LegalHold{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "case-42"},
		Spec:       retentionv1.LegalHoldSpec{Reason: "Case 42", Subjects: []retentionv1.SubjectIdentity{{Type: "user_id", Value: "7"}}},
	})
	heldExpired := count(t, conn, `SELECT count(*) FROM events WHERE user_id = '7' AND ts < $1`, base)

	// Read back after the last batch: what is left must be the held.
	always := deleteJob(ns, "run", retentionv1.ModeEnforce)
	always.Spec.Safety = &retentionv1.SafetyLimits{VerifyCounts: retentionv1.VerifyCountsAlways}
	createJob(t, always)
	job := waitPhase(t, ns, "run", retentionv1.PurgeJobSucceeded)
	if got := count(t, conn, `SELECT count(*) FROM events WHERE user_id = '7' AND ts < $1`, base); got != heldExpired || got == 0 {
		t.Errorf("held subject's expired rows: %d left, want all %d", got, heldExpired)
	}
	if got := count(t, conn, `SELECT count(*) FROM events WHERE user_id <> '7' AND ts < $1`, base); got != 0 {
		t.Errorf("%d expired rows of other subjects left", got)
	}
	if job.Status.Deleted != 300-heldExpired {
		t.Errorf("deleted %d, want %d", job.Status.Deleted, 300-heldExpired)
	}
	if job.Status.Operations[0].Held != heldExpired || job.Status.Held != heldExpired {
		t.Errorf("held %d (operation %d), want %d", job.Status.Held, job.Status.Operations[0].Held, heldExpired)
	}
	// The held records left in scope are what the counts expect.
	if !hasCondition(job, retentionv1.ConditionCountsVerified, metav1.ConditionTrue, retentionv1.ReasonVerified) {
		t.Errorf("conditions %+v", job.Status.Conditions)
	}
}

func TestPurgeJobCollectionWideHoldSkipsTheOperation(t *testing.T) {
	startManager(t, controllers.Options{})
	ns, conn := fixture(t, 100, 60)
	create(t, &retentionv1.LegalHold{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "audit"},
		Spec:       retentionv1.LegalHoldSpec{Collections: []retentionv1.Identifier{"events"}},
	})
	createJob(t, deleteJob(ns, "run", retentionv1.ModeEnforce))
	job := waitPhase(t, ns, "run", retentionv1.PurgeJobSucceeded)
	if job.Status.Operations[0].Phase != retentionv1.OperationHeld || count(t, conn, `SELECT count(*) FROM events`) != 100 {
		t.Errorf("a collection under hold was touched: op phase %s", job.Status.Operations[0].Phase)
	}
}

func TestPurgeJobResumesAfterRestartWithExactTotals(t *testing.T) {
	ns, conn := fixture(t, 2000, 1000)
	orig := map[int64]string{}
	rows, err := conn.Query(context.Background(), `SELECT id, email FROM events WHERE ts < $1`, base)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id int64
		var email string
		if err := rows.Scan(&id, &email); err != nil {
			t.Fatal(err)
		}
		orig[id] = email
	}
	rows.Close()

	// Anonymize the emails of expired rows with HMAC, which is not
	// idempotent (applied twice it changes the value again), so a row touched
	// twice or missed after the restart would both show.
	job := &retentionv1.PurgeJob{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "resume"},
		Spec: retentionv1.PurgeJobSpec{
			DatasetRef: retentionv1.LocalObjectReference{Name: "app"},
			Mode:       retentionv1.ModeEnforce,
			Cutoff:     &metav1.Time{Time: base},
			BatchSize:  50,
			Operations: []retentionv1.Operation{
				{Collection: "events", Action: retentionv1.ActionAnonymize, ByAge: true,
					Fields: []retentionv1.FieldAnonymization{{Name: "email", Anonymization: retentionv1.Anonymization{Strategy: retentionv1.StrategyHMAC}}}},
			},
		},
	}
	first := startManager(t, controllers.Options{PurgeJobBatchesPerSlice: 1})
	createJob(t, job)
	mid := waitFor(t, &retentionv1.PurgeJob{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "resume"}}, 60*time.Second, "5 batches",
		func(j *retentionv1.PurgeJob) bool {
			return len(j.Status.Operations) == 1 && j.Status.Operations[0].Batches >= 5
		})
	first.stop() // graceful: the batch in flight finishes and is checkpointed

	if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(mid), mid); err != nil {
		t.Fatal(err)
	}
	if mid.Status.Phase != retentionv1.PurgeJobRunning {
		t.Fatalf("job finished before the interruption (phase %s); make it bigger", mid.Status.Phase)
	}
	key := mask.Strategy{Kind: mask.HMAC, Key: []byte(hmacKey)}
	changed := anonymizedRows(t, conn, orig)
	if int64(changed) != mid.Status.Anonymized {
		t.Fatalf("after interruption: %d rows changed in the store, status says %d", changed, mid.Status.Anonymized)
	}

	startManager(t, controllers.Options{})
	done := waitPhase(t, ns, "resume", retentionv1.PurgeJobSucceeded)
	if done.Status.Anonymized != 1000 {
		t.Errorf("anonymized total %d, want exactly 1000", done.Status.Anonymized)
	}
	// Every expired row masked exactly once; every other row untouched.
	rows, err = conn.Query(context.Background(), `SELECT id, email, ts < $1 FROM events`, base)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var email string
		var expired bool
		if err := rows.Scan(&id, &email, &expired); err != nil {
			t.Fatal(err)
		}
		if !expired {
			if email != fmt.Sprintf("user%d@example.com", id) {
				t.Fatalf("row %d at or after the cutoff was changed", id)
			}
			continue
		}
		want, err := key.Apply(orig[id], mask.Column{Type: mask.Text})
		if err != nil {
			t.Fatal(err)
		}
		if email != want.(string) {
			t.Fatalf("row %d: email is not HMAC(original) exactly once (%s)", id, hex.EncodeToString([]byte(email))[:16])
		}
	}
}

// anonymizedRows counts expired rows whose email no longer equals the original.
func anonymizedRows(t *testing.T, conn *pgx.Conn, orig map[int64]string) int {
	t.Helper()
	rows, err := conn.Query(context.Background(), `SELECT id, email FROM events WHERE ts < $1`, base)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var id int64
		var email string
		if err := rows.Scan(&id, &email); err != nil {
			t.Fatal(err)
		}
		if email != orig[id] {
			n++
		}
	}
	return n
}

func TestPurgeJobMissingTableFailsWithReason(t *testing.T) {
	startManager(t, controllers.Options{})
	ns, _ := fixture(t, 10, 5)
	ds := eventsDataset(ns)
	ds.Name = "ghost"
	ds.Spec.Collections[0].Name = "ghost_events"
	create(t, ds)
	job := deleteJob(ns, "ghost", retentionv1.ModeEnforce)
	job.Spec.DatasetRef.Name = "ghost"
	job.Spec.Operations[0].Collection = "ghost_events"
	createJob(t, job)
	failed := waitPhase(t, ns, "ghost", retentionv1.PurgeJobFailed)
	if !hasCondition(failed, retentionv1.ConditionStalled, metav1.ConditionTrue, retentionv1.ReasonInvalidOperation) {
		t.Errorf("conditions: %+v", failed.Status.Conditions)
	}
	assertEvent(t, ns, "ghost", "Failed")
}

// assertEvent waits for an event with reason about a PurgeJob.
func assertEvent(t *testing.T, ns, name, reason string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var list eventsv1.EventList
		if err := env.Client.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		for _, e := range list.Items {
			if e.Regarding.Name == name && e.Reason == reason {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no event %s for %s", reason, name)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// An age purge of a collection without the held identity type (sessions
// reach users through devices) still keeps the held subject's records.
func TestPurgeJobHoldReachesThroughReferences(t *testing.T) {
	startManager(t, controllers.Options{})
	ns, conn := appFixture(t)
	ds := &retentionv1.Dataset{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "app"}, ds); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(ds.DeepCopy())
	for i := range ds.Spec.Collections {
		if ds.Spec.Collections[i].Name == "sessions" {
			ds.Spec.Collections[i].TimestampField = "started_at"
		}
	}
	if err := env.Client.Patch(context.Background(), ds, patch); err != nil {
		t.Fatal(err)
	}
	create(t, &retentionv1.LegalHold{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ada-case"},
		Spec: retentionv1.LegalHoldSpec{SubjectsSecretRef: &retentionv1.SecretReference{Name: "ada"}}})
	createJob(t, &retentionv1.PurgeJob{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "sessions"},
		Spec: retentionv1.PurgeJobSpec{DatasetRef: retentionv1.LocalObjectReference{Name: "app"}, Mode: retentionv1.ModeEnforce,
			Cutoff:     &metav1.Time{Time: time.Now().Add(time.Hour)},
			Safety:     &retentionv1.SafetyLimits{VerifyCounts: retentionv1.VerifyCountsAlways},
			Operations: []retentionv1.Operation{{Collection: "sessions", Action: retentionv1.ActionDelete, ByAge: true}}},
	})
	job := waitPhase(t, ns, "sessions", retentionv1.PurgeJobSucceeded)
	if left := count(t, conn, `SELECT count(*) FROM sessions`); left != 12 || job.Status.Deleted != 24 {
		t.Errorf("%d sessions left (want Ada's 12), %d deleted (want 24)", left, job.Status.Deleted)
	}
	if ada := adaLeft(t, conn)["sessions"]; ada != 12 {
		t.Errorf("the held subject kept %d of 12 sessions", ada)
	}
	if held := job.Status.Operations[0].Held; held != 12 {
		t.Errorf("operation held %d records, want Ada's 12 sessions", held)
	}
	if !hasCondition(job, retentionv1.ConditionCountsVerified, metav1.ConditionTrue, retentionv1.ReasonVerified) {
		t.Errorf("conditions %+v", job.Status.Conditions)
	}
}

// Lethe runs only the PurgeJobs it created: a job an admin creates directly,
// a signed job recreated with another spec, a signature copied onto another
// name, and a signed job whose subjects Secret was rewritten are all failed
// with reason UnsignedPurgeJob, and the store is untouched.
func TestPurgeJobNotCreatedByLetheIsRefused(t *testing.T) {
	ns, conn := fixture(t, 300, 100)
	ctx := context.Background()
	far := metav1.NewTime(time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC))

	// Created directly, without a signature, with a release annotation set
	// at creation (it must not matter).
	direct := deleteJob(ns, "direct", retentionv1.ModeEnforce)
	direct.Spec.Cutoff = &far
	direct.Spec.Safety = &retentionv1.SafetyLimits{MaxRows: ptr.To(int64(1))}
	direct.Annotations = map[string]string{retentionv1.AnnotationReleaseSafetyLimit: "true"}
	create(t, direct)

	// Signed by Lethe as a dry run, then recreated by an admin with an
	// Enforce spec and a cutoff in 2100, keeping the annotations (the spec
	// itself is immutable, so recreating is how it is "edited").
	signed := deleteJob(ns, "edited", retentionv1.ModeDryRun)
	createJob(t, signed)
	if err := env.Client.Delete(ctx, signed); err != nil {
		t.Fatal(err)
	}
	edited := deleteJob(ns, "edited", retentionv1.ModeEnforce)
	edited.Spec.Cutoff = &far
	edited.Annotations = signed.Annotations
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if err := env.Client.Create(ctx, edited); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatal(err)
		}
	}

	// A valid signature copied onto a job of another name.
	copied := deleteJob(ns, "copied", retentionv1.ModeEnforce)
	copied.Annotations = signed.Annotations
	create(t, copied)

	// A signed erasure whose subjects Secret was rewritten afterwards.
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "subjects", Labels: marked()},
		StringData: map[string]string{"user_id": "3"}})
	bySubject := &retentionv1.PurgeJob{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "subjects"},
		Spec: retentionv1.PurgeJobSpec{DatasetRef: retentionv1.LocalObjectReference{Name: "app"}, Mode: retentionv1.ModeEnforce,
			SubjectsSecretRef: &retentionv1.SecretReference{Name: "subjects"},
			Operations:        []retentionv1.Operation{{Collection: "events", Action: retentionv1.ActionDelete, BySubject: true}}},
	}
	createJob(t, bySubject)
	var s corev1.Secret
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "subjects"}, &s); err != nil {
		t.Fatal(err)
	}
	s.Data["user_id"] = []byte("4\n5\n6")
	if err := env.Client.Update(ctx, &s); err != nil {
		t.Fatal(err)
	}

	startManager(t, controllers.Options{})
	for _, name := range []string{"direct", "edited", "copied", "subjects"} {
		job := waitPhase(t, ns, name, retentionv1.PurgeJobFailed)
		if !hasCondition(job, retentionv1.ConditionStalled, metav1.ConditionTrue, retentionv1.ReasonUnsignedPurgeJob) ||
			!hasCondition(job, retentionv1.ConditionReady, metav1.ConditionFalse, retentionv1.ReasonUnsignedPurgeJob) {
			t.Errorf("job %s: conditions %+v", name, job.Status.Conditions)
		}
		if job.Status.StartTime != nil || job.Status.Matched != 0 || len(job.Status.Operations) != 0 {
			t.Errorf("job %s was counted or started: %+v", name, job.Status)
		}
		assertEvent(t, ns, name, retentionv1.ReasonUnsignedPurgeJob)
	}
	if got := count(t, conn, `SELECT count(*) FROM events`); got != 300 {
		t.Fatalf("a refused PurgeJob touched the store: %d rows left of 300", got)
	}

	// The same job signed by Lethe runs.
	createJob(t, deleteJob(ns, "lethe", retentionv1.ModeEnforce))
	if job := waitPhase(t, ns, "lethe", retentionv1.PurgeJobSucceeded); job.Status.Deleted != 100 || count(t, conn, `SELECT count(*) FROM events`) != 200 {
		t.Errorf("the signed job deleted %d, want 100", job.Status.Deleted)
	}
}
