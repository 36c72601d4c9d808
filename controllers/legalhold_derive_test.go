package controllers_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/controllers"
	"github.com/lethe-dev/lethe/internal/holds"
)

// The held reader: the hold names only the user_id; the email, which keys
// the newsletter table, is derived. Distinctive, to search logs for it.
const (
	heldUserID = "21"
	heldEmail  = "holly.kept.21@example.net"
)

// seedNewsletter creates users(id, email) and newsletter(email, created_at),
// keyed only by email: 30 readers with 6 newsletter rows each. Others' rows
// are aged 12, 112, …, 512 days (4 older than 180 days); all 6 of reader
// 21's are older than 180 days.
func seedNewsletter(t *testing.T, conn *pgx.Conn) {
	t.Helper()
	mustExec(t, conn, `CREATE TABLE users (id bigint PRIMARY KEY, email text UNIQUE NOT NULL)`)
	mustExec(t, conn, `CREATE TABLE newsletter (id bigserial PRIMARY KEY, email text NOT NULL, created_at timestamptz NOT NULL)`)
	mustExec(t, conn, `INSERT INTO users SELECT i, CASE WHEN i = 21 THEN $1 ELSE 'reader' || i || '@example.net' END FROM generate_series(1, 30) i`, heldEmail)
	mustExec(t, conn, `INSERT INTO newsletter (email, created_at)
		SELECT u.email, CASE WHEN u.id = 21 THEN now() - ((200 + 10 * j) || ' days')::interval ELSE now() - ((12 + 100 * j) || ' days')::interval END
		FROM users u, generate_series(0, 5) j`)
}

func newsletterDataset(ns string) *retentionv1.Dataset {
	return &retentionv1.Dataset{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "mail"},
		Spec: retentionv1.DatasetSpec{
			DataStoreRef: retentionv1.LocalObjectReference{Name: "db"},
			Collections: []retentionv1.Collection{
				{Name: "users", Identities: []retentionv1.IdentityField{{Type: "user_id", Field: "id"}, {Type: "email", Field: "email"}}},
				{Name: "newsletter", TimestampField: "created_at", Identities: []retentionv1.IdentityField{{Type: "email", Field: "email"}}},
			},
		},
	}
}

func newsletterPolicy(ns string) *retentionv1.RetentionPolicy {
	return &retentionv1.RetentionPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "newsletter"},
		Spec: retentionv1.RetentionPolicySpec{
			DatasetRef: retentionv1.LocalObjectReference{Name: "mail"},
			Mode:       retentionv1.ModeEnforce,
			Schedule:   "0 3 * * *",
			Rules: []retentionv1.RetentionRule{
				{Name: "newsletter", Collections: []retentionv1.Identifier{"newsletter"}, OlderThan: "180d", Action: retentionv1.ActionDelete},
			},
		},
	}
}

// secretEvents records every watch event on the Secrets of a namespace.
type secretEvents struct {
	mu     sync.Mutex
	events []watch.Event
}

func watchSecrets(t *testing.T, ns string) *secretEvents {
	t.Helper()
	w := watchIn(t, ns, &corev1.SecretList{})
	out := &secretEvents{}
	go func() {
		for e := range w.ResultChan() {
			out.mu.Lock()
			out.events = append(out.events, e)
			out.mu.Unlock()
		}
	}()
	return out
}

// watchIn watches the objects of list's kind in ns from now on, until the
// test ends.
func watchIn(t *testing.T, ns string, list client.ObjectList) watch.Interface {
	t.Helper()
	c, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	w, err := c.Watch(context.Background(), list, client.InNamespace(ns))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	return w
}

// added returns each Secret as it was first seen.
func (s *secretEvents) added() map[string]*corev1.Secret {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]*corev1.Secret{}
	for _, e := range s.events {
		if o, ok := e.Object.(*corev1.Secret); ok && e.Type == watch.Added {
			out[o.Name] = o.DeepCopy()
		}
	}
	return out
}

// count returns how many events of one type a Secret had.
func (s *secretEvents) count(name string, typ watch.EventType) int {
	n := 0
	for _, e := range s.of(name) {
		if e.Type == typ {
			n++
		}
	}
	return n
}

// of returns the recorded events of one Secret, in order.
func (s *secretEvents) of(name string) []watch.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []watch.Event
	for _, e := range s.events {
		if o, ok := e.Object.(*corev1.Secret); ok && o.Name == name {
			out = append(out, e)
		}
	}
	return out
}

// A hold naming only user_id 21 protects user 21's rows in a table keyed
// only by email (the email is derived through users): a retention run
// deletes the others' old rows and reports the held ones; a request naming
// only the email is stalled and listed in the hold's status.blocking;
// releasing the hold lets both proceed. The derived email lives only in the
// hold's own Secret, owned by the hold from its creation.
func TestLegalHoldOnUserIDKeepsEmailKeyedRowsInRetentionRuns(t *testing.T) {
	startManager(t, controllers.Options{})
	ns := namespace(t)
	secrets := watchSecrets(t, ns)
	pg := postgresStore(t, ns, "db")
	conn, err := pgx.Connect(context.Background(), pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	seedNewsletter(t, conn)
	create(t, newsletterDataset(ns))
	heldRows := count(t, conn, `SELECT count(*) FROM newsletter WHERE email = $1 AND created_at < now() - interval '180 days'`, heldEmail)
	if heldRows != 6 {
		t.Fatalf("fixture: reader 21 has %d old newsletter rows, want 6", heldRows)
	}

	hold := &retentionv1.LegalHold{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "case-21"},
		Spec:       retentionv1.LegalHoldSpec{Reason: "Case 2026-21", Subjects: []retentionv1.SubjectIdentity{{Type: "user_id", Value: heldUserID}}},
	}
	create(t, hold)
	h := waitFor(t, holdKey(ns, "case-21"), 30*time.Second, "email derived", func(h *retentionv1.LegalHold) bool {
		return holdIn("Active")(h) && h.Status.Derived == 1 &&
			hasCondition(h, retentionv1.ConditionIdentitiesDerived, metav1.ConditionTrue, retentionv1.ReasonIdentitiesDerived)
	})
	if msg := condition(h, retentionv1.ConditionIdentitiesDerived).Message; !strings.Contains(msg, "email (1 value) from user_id via users") || !strings.Contains(msg, "case-21-derived") {
		t.Errorf("IdentitiesDerived message: %q", msg)
	}

	// (d) The derived Secret: owned by the hold from its creation, labelled,
	// holding the email.
	var s corev1.Secret
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "case-21-derived"}, &s); err != nil {
		t.Fatal(err)
	}
	if string(s.Data["email"]) != heldEmail || len(s.Data) != 1 || s.Labels[holds.LabelLegalHold] != "case-21" {
		t.Errorf("derived Secret: keys %v, labels %v", keys(s.Data), s.Labels)
	}
	events := secrets.of("case-21-derived")
	if len(events) == 0 || events[0].Type != watch.Added {
		t.Fatalf("watch events of the derived Secret: %d, first %v", len(events), events)
	}
	for _, e := range events {
		o := e.Object.(*corev1.Secret)
		if !metav1.IsControlledBy(o, h) || len(o.OwnerReferences) != 1 {
			t.Errorf("%s event: the derived Secret is not owned by the hold alone: %+v", e.Type, o.OwnerReferences)
		}
	}

	// (a) A retention run keeps every row of reader 21.
	create(t, newsletterPolicy(ns))
	runNow(t, ns, "newsletter", "while-held")
	p := waitLastRun(t, ns, "newsletter", func(p *retentionv1.RetentionPolicy) bool {
		return p.Status.LastRun != nil && p.Status.LastRun.Result == retentionv1.PurgeJobSucceeded
	}, "held run Succeeded")
	if got := count(t, conn, `SELECT count(*) FROM newsletter WHERE email = $1`, heldEmail); got != 6 {
		t.Fatalf("the hold on user_id 21 lost email-keyed rows: %d of 6 left", got)
	}
	if got := count(t, conn, `SELECT count(*) FROM newsletter WHERE email <> $1 AND created_at < now() - interval '180 days'`, heldEmail); got != 0 {
		t.Errorf("%d old rows of others left", got)
	}
	if got := count(t, conn, `SELECT count(*) FROM newsletter WHERE email <> $1`, heldEmail); got != 29*2 {
		t.Errorf("%d rows of others left, want 58 (younger than 180 days)", got)
	}
	firstRun := p.Status.LastRun.PurgeJob
	if p.Status.LastRun.RowsHeld != heldRows || p.Status.LastRun.RowsDeleted != 29*4 {
		t.Errorf("lastRun %+v: want %d rows held, 116 deleted", p.Status.LastRun, heldRows)
	}
	job := &retentionv1.PurgeJob{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: firstRun}}
	if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(job), job); err != nil {
		t.Fatal(err)
	}
	if len(job.Status.Operations) != 1 || job.Status.Operations[0].Held != heldRows || job.Status.Operations[0].Deleted != 29*4 || job.Status.Held != heldRows {
		t.Errorf("PurgeJob status: held %d, operations %+v; want held %d and 116 deleted", job.Status.Held, job.Status.Operations, heldRows)
	}
	kept := fmt.Sprintf("%d records kept by legal holds", heldRows)
	if c := condition(job, retentionv1.ConditionReady); c == nil || !strings.Contains(c.Message, kept) {
		t.Errorf("PurgeJob Ready condition: %+v", c)
	}
	waitEventNote(t, ns, firstRun, retentionv1.ReasonSucceeded, kept)

	// (b) A request naming only the email is stalled by the hold, and the
	// hold lists it with the run it kept records from.
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "by-email", Labels: marked()}, StringData: map[string]string{"email": heldEmail}})
	create(t, &retentionv1.DeletionRequest{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "forget-21"},
		Spec: retentionv1.DeletionRequestSpec{Reason: retentionv1.ReasonSubjectRequest,
			Subject: retentionv1.Subject{IdentitiesSecretRef: &retentionv1.SecretReference{Name: "by-email"}}},
	})
	dr := waitRequest(t, ns, "forget-21", retentionv1.RequestHeld)
	if !slices.Equal(dr.Status.HeldBy, []string{"case-21"}) || !hasCondition(dr, retentionv1.ConditionStalled, metav1.ConditionTrue, retentionv1.ReasonLegalHold) {
		t.Errorf("held request: heldBy %v, conditions %+v", dr.Status.HeldBy, dr.Status.Conditions)
	}
	want := []string{"DeletionRequest/forget-21", "PurgeJob/" + firstRun}
	h = waitFor(t, holdKey(ns, "case-21"), 30*time.Second, "blocking "+strings.Join(want, ", "), func(h *retentionv1.LegalHold) bool {
		return slices.Equal(h.Status.Blocking, want)
	})
	if c := condition(h, retentionv1.ConditionActive); c == nil || !strings.Contains(c.Message, "holding back 2") {
		t.Errorf("Active condition: %+v", c)
	}
	time.Sleep(time.Second)
	if got := count(t, conn, `SELECT count(*) FROM users WHERE id = 21`) + count(t, conn, `SELECT count(*) FROM newsletter WHERE email = $1`, heldEmail); got != 7 {
		t.Fatalf("the held request touched reader 21's rows: %d of 7 left", got)
	}

	// (c) Released: the request erases reader 21 and the next run holds
	// nothing back; the derived identities are gone with the hold's end.
	patch := client.MergeFrom(h.DeepCopy())
	h.Spec.Released = true
	if err := env.Client.Patch(context.Background(), h, patch); err != nil {
		t.Fatal(err)
	}
	runNow(t, ns, "newsletter", "after-release")
	waitRequest(t, ns, "forget-21", retentionv1.RequestCompleted)
	p = waitLastRun(t, ns, "newsletter", func(p *retentionv1.RetentionPolicy) bool {
		return p.Status.LastRun != nil && p.Status.LastRun.PurgeJob != firstRun && p.Status.LastRun.Result == retentionv1.PurgeJobSucceeded
	}, "run after release Succeeded")
	second := &retentionv1.PurgeJob{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: p.Status.LastRun.PurgeJob}}
	if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(second), second); err != nil {
		t.Fatal(err)
	}
	if second.Status.Held != 0 || second.Status.Operations[0].Held != 0 {
		t.Errorf("the run after release still held records: %+v", second.Status.Operations)
	}
	if got := count(t, conn, `SELECT count(*) FROM users WHERE id = 21`) + count(t, conn, `SELECT count(*) FROM newsletter WHERE email = $1`, heldEmail); got != 0 {
		t.Errorf("%d rows of reader 21 left after the hold was released", got)
	}
	if got := count(t, conn, `SELECT count(*) FROM newsletter`); got != 29*2 {
		t.Errorf("%d newsletter rows left, want the others' 58", got)
	}
	h = waitFor(t, holdKey(ns, "case-21"), 30*time.Second, "released, nothing blocked or derived", func(h *retentionv1.LegalHold) bool {
		return holdIn("Released")(h) && len(h.Status.Blocking) == 0 && h.Status.Derived == 0
	})
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "case-21-derived"}, &corev1.Secret{}); client.IgnoreNotFound(err) != nil || err == nil {
		t.Errorf("the derived Secret outlived the hold's release (err %v)", err)
	}

	// (d) The derived email is nowhere but in that Secret (and the
	// request's own ones): not in status, events, logs or metrics.
	assertNoSubjectValues(t, ns, h, heldEmail)
	assertValueNowhere(t, ns, heldEmail)
}

// A hold re-derives when its Datasets change and on its recheck interval;
// an identity shared by more people than a request may derive is held for
// all of them (holding more never deletes).
func TestLegalHoldDerivationFollowsDatasetsAndData(t *testing.T) {
	startManager(t, controllers.Options{LegalHoldRecheck: 2 * time.Second})
	ns := namespace(t)
	pg := postgresStore(t, ns, "db")
	conn, err := pgx.Connect(context.Background(), pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	seedNewsletter(t, conn)
	ds := newsletterDataset(ns)
	users := ds.Spec.Collections[0]
	ds.Spec.Collections = ds.Spec.Collections[1:] // no linking collection yet
	create(t, ds)
	create(t, &retentionv1.LegalHold{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "case-21"},
		Spec:       retentionv1.LegalHoldSpec{Subjects: []retentionv1.SubjectIdentity{{Type: "user_id", Value: heldUserID}}},
	})
	waitFor(t, holdKey(ns, "case-21"), 30*time.Second, "nothing to derive", func(h *retentionv1.LegalHold) bool {
		return holdIn("Active")(h) && hasCondition(h, retentionv1.ConditionIdentitiesDerived, metav1.ConditionFalse, retentionv1.ReasonNothingDerived)
	})
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "case-21-derived"}, &corev1.Secret{}); err == nil {
		t.Error("a derived Secret exists although nothing is derivable")
	}

	// The Dataset gains the linking collection: the Dataset watch
	// re-derives at once (well before the recheck interval could matter).
	if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(ds), ds); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(ds.DeepCopy())
	ds.Spec.Collections = append(ds.Spec.Collections, users)
	if err := env.Client.Patch(context.Background(), ds, patch); err != nil {
		t.Fatal(err)
	}
	waitFor(t, holdKey(ns, "case-21"), 30*time.Second, "email derived after the Dataset changed", func(h *retentionv1.LegalHold) bool {
		return h.Status.Derived == 1 && hasCondition(h, retentionv1.ConditionIdentitiesDerived, metav1.ConditionTrue, retentionv1.ReasonIdentitiesDerived)
	})

	// The data changes: a second linking table, where reader 21 has two
	// more addresses, and one shared with others (never derived: not only
	// reader 21's), is found on the recheck interval.
	mustExec(t, conn, `CREATE TABLE aliases (user_id bigint NOT NULL, email text NOT NULL, PRIMARY KEY (user_id, email))`)
	mustExec(t, conn, `INSERT INTO aliases VALUES (21, 'holly.alt1@example.net'), (21, 'holly.alt2@example.net'), (21, 'family@example.net'), (3, 'family@example.net')`)
	if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(ds), ds); err != nil {
		t.Fatal(err)
	}
	patch = client.MergeFrom(ds.DeepCopy())
	ds.Spec.Collections = append(ds.Spec.Collections, retentionv1.Collection{Name: "aliases",
		Identities: []retentionv1.IdentityField{{Type: "user_id", Field: "user_id"}, {Type: "email", Field: "email"}}})
	if err := env.Client.Patch(context.Background(), ds, patch); err != nil {
		t.Fatal(err)
	}
	waitFor(t, holdKey(ns, "case-21"), 30*time.Second, "three emails derived", func(h *retentionv1.LegalHold) bool {
		return h.Status.Derived == 3
	})
	mustExec(t, conn, `INSERT INTO aliases VALUES (21, 'holly.alt3@example.net')`)
	waitFor(t, holdKey(ns, "case-21"), 30*time.Second, "four emails derived on the recheck interval", func(h *retentionv1.LegalHold) bool {
		return h.Status.Derived == 4
	})
	var s corev1.Secret
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "case-21-derived"}, &s); err != nil {
		t.Fatal(err)
	}
	if got := holds.SplitValues(string(s.Data["email"])); !slices.Equal(got, []string{"holly.alt1@example.net", "holly.alt2@example.net", "holly.alt3@example.net", heldEmail}) {
		t.Errorf("derived emails: %d values %v", len(got), got)
	}

	// A hold on an email that ten user ids share: a request would stop at
	// 8 (DerivationLimit); the hold holds all ten.
	mustExec(t, conn, `INSERT INTO aliases SELECT 100 + i, 'shared@example.net' FROM generate_series(1, 10) i`)
	create(t, &retentionv1.LegalHold{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "shared"},
		Spec:       retentionv1.LegalHoldSpec{Subjects: []retentionv1.SubjectIdentity{{Type: "email", Value: "shared@example.net"}}},
	})
	h := waitFor(t, holdKey(ns, "shared"), 30*time.Second, "ten user ids derived", func(h *retentionv1.LegalHold) bool {
		return h.Status.Derived == 10 && hasCondition(h, retentionv1.ConditionIdentitiesDerived, metav1.ConditionTrue, retentionv1.ReasonIdentitiesDerived)
	})
	if condition(h, retentionv1.ConditionStalled) != nil {
		t.Errorf("a hold must not stall on a shared identity: %+v", h.Status.Conditions)
	}
	assertValueNowhere(t, ns, "holly.alt1@example.net")
}

// assertValueNowhere checks that a subject value reached no status, event,
// log line or metric label.
func assertValueNowhere(t *testing.T, ns, value string) {
	t.Helper()
	var events eventsv1.EventList
	if err := env.Client.List(context.Background(), &events, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	var haystack strings.Builder
	for _, e := range events.Items {
		fmt.Fprintf(&haystack, "%s %s %s\n", e.Reason, e.Note, e.Action)
	}
	lists := []client.ObjectList{&retentionv1.LegalHoldList{}, &retentionv1.DeletionRequestList{}, &retentionv1.PurgeJobList{}, &retentionv1.RetentionPolicyList{}, &retentionv1.DatasetList{}}
	for _, l := range lists {
		if err := env.Client.List(context.Background(), l, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&haystack, "%+v\n", l)
	}
	families, err := ctrlmetrics.Registry.(prometheus.Gatherer).Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		haystack.WriteString(f.String())
	}
	haystack.WriteString(managerLogs.String())
	if strings.Contains(haystack.String(), value) {
		t.Errorf("subject value %q found in a status, event, log line or metric", value)
	}
}

// waitEventNote waits for an event with reason about an object whose note
// contains text.
func waitEventNote(t *testing.T, ns, name, reason, text string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var list eventsv1.EventList
		if err := env.Client.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		for _, e := range list.Items {
			if e.Regarding.Name == name && e.Reason == reason && strings.Contains(e.Note, text) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no event %s for %s saying %q", reason, name, text)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
