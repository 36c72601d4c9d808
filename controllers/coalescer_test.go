package controllers_test

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/controllers"
)

const alanID = "usr_alan_1912"

// Requests erased by one PurgeJob are verified together; when something is
// left, only the request it belongs to fails, naming the collection.
func TestCoalescedVerificationFailsOnlyTheRequestWithRecordsLeft(t *testing.T) {
	// The window must outlast planning both requests on a loaded machine:
	// what is tested is that one PurgeJob erases them, not how fast.
	startManager(t, controllers.Options{CoalesceWindow: 4 * time.Second})
	ns, conn := appFixture(t)
	// An application keeps writing for Alan while he is erased: deleting his
	// user row logs an audit line that identifies him again.
	mustExec(t, conn, `CREATE TABLE audit_log (id bigserial PRIMARY KEY, user_id text NOT NULL, line text)`)
	mustExec(t, conn, `INSERT INTO audit_log (user_id, line) VALUES ($1, 'signed up'), ($2, 'signed up')`, adaID, alanID)
	mustExec(t, conn, `CREATE FUNCTION log_deletion() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF OLD.id = '`+alanID+`' THEN INSERT INTO audit_log (user_id, line) VALUES (OLD.id, 'deleted'); END IF;
			RETURN OLD;
		END $$`)
	mustExec(t, conn, `CREATE TRIGGER log_deletion AFTER DELETE ON users FOR EACH ROW EXECUTE FUNCTION log_deletion()`)
	var ds retentionv1.Dataset
	// audit_log refers to users (declared: the table has no foreign key), so
	// it is erased before users, and the trigger's line comes after it.
	updateDataset(t, ns, "app", &ds, func(d *retentionv1.Dataset) {
		d.Spec.Collections = append(d.Spec.Collections, retentionv1.Collection{Name: "audit_log",
			Identities: []retentionv1.IdentityField{{Type: "user_id", Field: "user_id"}},
			References: []retentionv1.Reference{{Field: "user_id", Collection: "users", TargetField: "id"}}})
	})
	waitFor(t, &ds, 30*time.Second, "Dataset Ready with audit_log", func(d *retentionv1.Dataset) bool {
		return retentionv1.IsReady(d) && d.Status.ObservedGeneration == d.Generation
	})

	ada := adaRequest(ns, "ada")
	ada.Spec.Subject = retentionv1.Subject{Identities: []retentionv1.SubjectIdentity{{Type: "user_id", Value: adaID}}}
	alan := adaRequest(ns, "alan")
	alan.Spec.Subject = retentionv1.Subject{Identities: []retentionv1.SubjectIdentity{{Type: "user_id", Value: alanID}}}
	create(t, ada)
	create(t, alan)

	gotAda := waitRequest(t, ns, "ada", retentionv1.RequestCompleted)
	gotAlan := waitRequest(t, ns, "alan", retentionv1.RequestFailed)
	if len(gotAda.Status.PurgeJobs) != 1 || !equalStrings(gotAda.Status.PurgeJobs, gotAlan.Status.PurgeJobs) {
		t.Fatalf("the two requests were not erased by one PurgeJob: %v and %v", gotAda.Status.PurgeJobs, gotAlan.Status.PurgeJobs)
	}
	// Only users holds the email and phone the user_id could be derived
	// into: deriving them changes nothing, so the stores are not read for it
	// and no Secret of derived identities is kept.
	var derived corev1.Secret
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "ada-subject"}, &derived); !apierrors.IsNotFound(err) {
		t.Errorf("a Secret of derived identities was kept when nothing needed deriving (error %v)", err)
	}
	if condition(gotAda, retentionv1.ConditionIdentitiesDerived) != nil {
		t.Errorf("conditions: %+v", gotAda.Status.Conditions)
	}
	if !gotAda.Status.Receipt.Verified {
		t.Errorf("ada's receipt is not verified: %+v", gotAda.Status.Receipt)
	}
	c := condition(gotAlan, retentionv1.ConditionStalled)
	if c == nil || c.Reason != retentionv1.ReasonVerificationFailed || !strings.Contains(c.Message, "1 records in collection audit_log") {
		t.Errorf("alan's request: %+v", gotAlan.Status.Conditions)
	}
	if n := count(t, conn, `SELECT count(*) FROM audit_log WHERE user_id = $1`, adaID); n != 0 {
		t.Errorf("%d audit lines of ada left", n)
	}
	if n := count(t, conn, `SELECT count(*) FROM audit_log WHERE user_id = $1`, alanID); n != 1 {
		t.Errorf("%d audit lines of alan, want the one written during the erasure", n)
	}
}

// A request queued by a manager that stopped before recording its PurgeJob
// finds that job after a restart, through the job's annotation, and is not
// erased a second time by a new job.
func TestQueuedRequestFindsItsPurgeJobAfterRestart(t *testing.T) {
	ctx := context.Background()
	first := startManager(t, controllers.Options{CoalesceWindow: time.Hour}) // never flushes
	ns, conn := appFixture(t)
	create(t, adaRequest(ns, "ada"))
	queued := waitRequest(t, ns, "ada", retentionv1.RequestQueued)
	first.stop()

	// What the stopped manager had created for it: the subjects Secret and
	// the PurgeJob naming the request.
	var ds retentionv1.Dataset
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "app"}, &ds); err != nil {
		t.Fatal(err)
	}
	var ops []retentionv1.Operation
	for _, p := range queued.Status.Plan {
		op := retentionv1.Operation{Collection: retentionv1.Identifier(p.Collection), Action: p.Action, BySubject: true}
		for _, c := range ds.Spec.Collections {
			if string(c.Name) == p.Collection && p.Action == retentionv1.ActionAnonymize {
				for _, f := range c.Fields {
					if f.Anonymize != nil {
						op.Fields = append(op.Fields, retentionv1.FieldAnonymization{Name: f.Name, Anonymization: *f.Anonymize})
					}
				}
			}
		}
		ops = append(ops, op)
	}
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "erase-app-before-restart", Labels: marked()},
		StringData: map[string]string{"user_id": adaID, "email": adaEmail}})
	createJob(t, &retentionv1.PurgeJob{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "erase-app-before-restart",
			Labels:      map[string]string{retentionv1.LabelCoalesced: "true"},
			Annotations: map[string]string{retentionv1.AnnotationDeletionRequests: "ada"}},
		Spec: retentionv1.PurgeJobSpec{DatasetRef: retentionv1.LocalObjectReference{Name: "app"}, Mode: retentionv1.ModeEnforce,
			SubjectsSecretRef: &retentionv1.SecretReference{Name: "erase-app-before-restart"}, Operations: ops},
	})

	startManager(t, controllers.Options{CoalesceWindow: 100 * time.Millisecond})
	dr := waitRequest(t, ns, "ada", retentionv1.RequestCompleted)
	if !equalStrings(dr.Status.PurgeJobs, []string{"erase-app-before-restart"}) {
		t.Errorf("status.purgeJobs %v, want the job started before the restart", dr.Status.PurgeJobs)
	}
	var jobs retentionv1.PurgeJobList
	if err := env.Client.List(ctx, &jobs, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	if len(jobs.Items) != 1 {
		t.Errorf("%d PurgeJobs after the restart, want the one started before it", len(jobs.Items))
	}
	for table, n := range adaLeft(t, conn) {
		if n != 0 {
			t.Errorf("%d rows identifiable to the subject left in %s", n, table)
		}
	}
	if rows := dr.Status.Receipt.Entries; len(rows) != 6 {
		t.Errorf("receipt: %+v", dr.Status.Receipt)
	}
}

func equalStrings(a, b []string) bool {
	return strings.Join(a, ",") == strings.Join(b, ",")
}
