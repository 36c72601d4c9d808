package unittest_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	clientfake "sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/controllers"
	"github.com/lethe-dev/lethe/internal/connect"
	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/datastore/fake"
	"github.com/lethe-dev/lethe/internal/signature"
)

const ns = "shop"

var (
	base      = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	digestKey = []byte("0123456789abcdef0123456789abcdef")
	jobKey    = client.ObjectKey{Namespace: ns, Name: "purge"}
)

// world is a namespace with a PostgreSQL DataStore (served by a fake
// driver holding 1000 events, 437 of them expired), its Dataset and a
// PurgeJob signed by the manager, and the PurgeJob reconciler over them.
type world struct {
	t        *testing.T
	c        client.Client
	driver   *fake.Driver
	opened   int
	recorder *events.FakeRecorder
	r        *controllers.PurgeJobReconciler
	// statusPatches counts status patches; failPatch, if positive, fails
	// that one; beforePatch, if set, runs before each.
	statusPatches int
	failPatch     int
	beforePatch   func(n int)
	// statusUpdates counts status updates (a patch retried after a conflict).
	statusUpdates int
}

// newWorld builds the world; edit changes the job before it is signed.
func newWorld(t *testing.T, edit func(*retentionv1.PurgeJob)) *world {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := retentionv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	job := &retentionv1.PurgeJob{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: jobKey.Name},
		Spec: retentionv1.PurgeJobSpec{
			DatasetRef: retentionv1.LocalObjectReference{Name: "app"},
			Mode:       retentionv1.ModeEnforce,
			Cutoff:     &metav1.Time{Time: base},
			BatchSize:  100,
			Operations: []retentionv1.Operation{{Collection: "events", Action: retentionv1.ActionDelete, ByAge: true}},
		},
	}
	if edit != nil {
		edit(job)
	}
	if err := signature.Sign(digestKey, job, nil); err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, driver: eventStore(1000, 437), recorder: events.NewFakeRecorder(100)}
	w.c = clientfake.NewClientBuilder().WithScheme(scheme).
		WithObjects(job, credentials(), store(), dataset()).
		WithStatusSubresource(&retentionv1.PurgeJob{}, &retentionv1.LegalHold{}).
		WithInterceptorFuncs(interceptor.Funcs{SubResourcePatch: w.patchStatus, SubResourceUpdate: w.updateStatus}).
		Build()
	pool := &connect.Pool{Reader: w.c, Open: func(context.Context, datastore.Config) (datastore.Driver, error) {
		w.opened++
		return w.driver, nil
	}}
	w.r = &controllers.PurgeJobReconciler{
		Deps: controllers.Deps{Client: w.c, APIReader: w.c, Recorder: w.recorder, Pool: pool, DigestKey: digestKey,
			Clock: func() time.Time { return base.Add(time.Hour) }},
	}
	return w
}

func (w *world) patchStatus(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
	w.statusPatches++
	if w.beforePatch != nil {
		w.beforePatch(w.statusPatches)
	}
	if w.statusPatches == w.failPatch {
		return apierrors.NewServiceUnavailable("the API server is overloaded")
	}
	return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
}

func (w *world) updateStatus(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
	w.statusUpdates++
	return c.SubResource(sub).Update(ctx, obj, opts...)
}

// eventStore is the store: record i (key %05d) has user_id i%10, and the first
// expired are dated before base.
func eventStore(n, expired int) *fake.Driver {
	recs := make([]fake.Record, n)
	for i := range n {
		recs[i] = fake.Record{Key: fmt.Sprintf("%05d", i+1), Time: base.Add(time.Duration(i-expired) * time.Minute),
			Fields: map[string]string{"user_id": fmt.Sprint((i + 1) % 10)}}
	}
	return fake.New().Insert("events", recs...)
}

func credentials() *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db-credentials", Labels: map[string]string{retentionv1.LabelSecretConsent: "true"}},
		Data: map[string][]byte{"username": []byte("lethe"), "password": []byte("secret")}}
}

func store() *retentionv1.DataStore {
	return &retentionv1.DataStore{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db"},
		Spec: retentionv1.DataStoreSpec{Type: retentionv1.DataStorePostgreSQL, Host: "db.shop.svc", Database: "shop",
			CredentialsSecretRef: &retentionv1.SecretReference{Name: "db-credentials"}}}
}

func dataset() *retentionv1.Dataset {
	return &retentionv1.Dataset{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app"},
		Spec: retentionv1.DatasetSpec{DataStoreRef: retentionv1.LocalObjectReference{Name: "db"},
			Collections: []retentionv1.Collection{{Name: "events", TimestampField: "ts",
				Identities: []retentionv1.IdentityField{{Type: "user_id", Field: "user_id"}}}}}}
}

// reconcile runs one reconcile of the job.
func (w *world) reconcile() (reconcile.Result, error) {
	return w.r.Reconcile(context.Background(), reconcile.Request{NamespacedName: jobKey})
}

// settle reconciles while the result asks to come back at once (the next
// slice; at most 50 times) and returns the last result.
func (w *world) settle() (reconcile.Result, error) {
	w.t.Helper()
	for range 50 {
		res, err := w.reconcile()
		if err != nil || res.RequeueAfter == 0 || res.RequeueAfter > 10*time.Millisecond {
			return res, err
		}
	}
	w.t.Fatal("the job did not settle in 50 reconciles")
	return reconcile.Result{}, nil
}

// job reads the job.
func (w *world) job() *retentionv1.PurgeJob {
	w.t.Helper()
	var job retentionv1.PurgeJob
	if err := w.c.Get(context.Background(), jobKey, &job); err != nil {
		w.t.Fatal(err)
	}
	return &job
}

// update changes the job (not its status).
func (w *world) update(change func(*retentionv1.PurgeJob)) {
	w.t.Helper()
	job := w.job()
	change(job)
	if err := w.c.Update(context.Background(), job); err != nil {
		w.t.Fatal(err)
	}
}

// events returns the events recorded so far ("<type> <reason> <note>").
func (w *world) events() []string {
	var out []string
	for {
		select {
		case e := <-w.recorder.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

func (w *world) left() int { return len(w.driver.Records("events")) }

// wantPhase checks the job's phase and, when reason is set, the condition
// that carries it (Ready for Succeeded, Stalled for Stalled and Failed).
func wantPhase(t *testing.T, job *retentionv1.PurgeJob, phase retentionv1.PurgeJobPhase, reason string) {
	t.Helper()
	if job.Status.Phase != phase {
		t.Fatalf("phase %s, want %s; conditions %+v", job.Status.Phase, phase, job.Status.Conditions)
	}
	cond := retentionv1.ConditionStalled
	if phase == retentionv1.PurgeJobSucceeded {
		cond = retentionv1.ConditionReady
	}
	if c := meta.FindStatusCondition(job.Status.Conditions, cond); reason != "" && (c == nil || c.Status != metav1.ConditionTrue || c.Reason != reason) {
		t.Fatalf("condition %s: %+v, want True %s", cond, c, reason)
	}
}

// wantEvent checks that an event of this type and reason was recorded.
func wantEvent(t *testing.T, events []string, typeAndReason string) {
	t.Helper()
	for _, e := range events {
		if strings.HasPrefix(e, typeAndReason+" ") {
			return
		}
	}
	t.Errorf("no event %q in %q", typeAndReason, events)
}
