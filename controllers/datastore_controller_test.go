package controllers_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/controllers"
	"github.com/lethe-dev/lethe/internal/testharness"
)

func TestDataStoreConnectsAndReportsVersion(t *testing.T) {
	startManager(t, controllers.Options{})
	ns := namespace(t)
	postgresStore(t, ns, "db")

	ds := waitFor(t, &retentionv1.DataStore{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db"}}, 30*time.Second, "Ready=True",
		func(d *retentionv1.DataStore) bool {
			return hasCondition(d, retentionv1.ConditionReady, metav1.ConditionTrue, retentionv1.ReasonConnected)
		})
	if !strings.Contains(ds.Status.ServerVersion, ".") {
		t.Errorf("serverVersion = %q, want a version like 15.4", ds.Status.ServerVersion)
	}
	if ds.Status.ObservedGeneration != ds.Generation || ds.Status.LastProbeTime == nil {
		t.Errorf("status not current: observedGeneration %d, generation %d, lastProbeTime %v", ds.Status.ObservedGeneration, ds.Generation, ds.Status.LastProbeTime)
	}
	if condition(ds, retentionv1.ConditionStalled) != nil || condition(ds, retentionv1.ConditionReconciling) != nil {
		t.Errorf("Stalled/Reconciling must be absent when Ready: %+v", ds.Status.Conditions)
	}
}

func TestDataStoreMissingSecretStallsUntilCreated(t *testing.T) {
	startManager(t, controllers.Options{})
	ns := namespace(t)
	pg := postgresStore(t, ns, "db")
	// Point a second DataStore at a Secret that does not exist yet.
	create(t, &retentionv1.DataStore{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "late"},
		Spec: retentionv1.DataStoreSpec{
			Type: retentionv1.DataStorePostgreSQL, Host: pg.Host, Port: ptr.To(int32(pg.Port)),
			Database: retentionv1.Identifier(pg.Database), TLS: retentionv1.TLSDisable,
			CredentialsSecretRef: &retentionv1.SecretReference{Name: "late-credentials"},
			ProbeInterval:        "1s",
		},
	})
	key := &retentionv1.DataStore{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "late"}}
	ds := waitFor(t, key, 30*time.Second, "Stalled=True SecretNotFound", func(d *retentionv1.DataStore) bool {
		return hasCondition(d, retentionv1.ConditionStalled, metav1.ConditionTrue, retentionv1.ReasonSecretNotFound)
	})
	if !hasCondition(ds, retentionv1.ConditionReady, metav1.ConditionFalse, retentionv1.ReasonSecretNotFound) {
		t.Errorf("Ready should be False/SecretNotFound: %+v", ds.Status.Conditions)
	}
	create(t, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "late-credentials", Labels: marked()},
		StringData: map[string]string{"username": pg.User, "password": pg.Password},
	})
	waitFor(t, key, 30*time.Second, "Ready=True after the Secret appears", func(d *retentionv1.DataStore) bool {
		return hasCondition(d, retentionv1.ConditionReady, metav1.ConditionTrue, retentionv1.ReasonConnected) &&
			condition(d, retentionv1.ConditionStalled) == nil
	})
}

func TestDataStoreWrongPasswordIsAuthenticationFailed(t *testing.T) {
	startManager(t, controllers.Options{})
	ns := namespace(t)
	pg := postgresStore(t, ns, "db")
	create(t, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bad-credentials", Labels: marked()},
		StringData: map[string]string{"username": "lethe_nobody", "password": "wrong-password"},
	})
	create(t, &retentionv1.DataStore{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bad"},
		Spec: retentionv1.DataStoreSpec{
			Type: retentionv1.DataStorePostgreSQL, Host: pg.Host, Port: ptr.To(int32(pg.Port)),
			Database: retentionv1.Identifier(pg.Database), TLS: retentionv1.TLSDisable,
			CredentialsSecretRef: &retentionv1.SecretReference{Name: "bad-credentials"},
		},
	})
	ds := waitFor(t, &retentionv1.DataStore{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bad"}}, 30*time.Second,
		"Stalled=True AuthenticationFailed", func(d *retentionv1.DataStore) bool {
			return hasCondition(d, retentionv1.ConditionStalled, metav1.ConditionTrue, retentionv1.ReasonAuthenticationFailed)
		})
	if strings.Contains(condition(ds, retentionv1.ConditionReady).Message, "wrong-password") {
		t.Errorf("condition message leaks the password: %q", condition(ds, retentionv1.ConditionReady).Message)
	}
}

func TestDataStoreUnreachableIsNotStalled(t *testing.T) {
	startManager(t, controllers.Options{})
	ns := namespace(t)
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "nowhere-credentials", Labels: marked()},
		StringData: map[string]string{"username": "lethe", "password": "unused"}})
	create(t, &retentionv1.DataStore{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "nowhere"},
		Spec: retentionv1.DataStoreSpec{
			Type: retentionv1.DataStorePostgreSQL, Host: "127.0.0.1", Port: ptr.To(int32(1)),
			Database: "app", TLS: retentionv1.TLSDisable,
			CredentialsSecretRef: &retentionv1.SecretReference{Name: "nowhere-credentials"},
		},
	})
	ds := waitFor(t, &retentionv1.DataStore{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "nowhere"}}, 30*time.Second,
		"Ready=False ConnectionFailed", func(d *retentionv1.DataStore) bool {
			return hasCondition(d, retentionv1.ConditionReady, metav1.ConditionFalse, retentionv1.ReasonConnectionFailed)
		})
	// A transient error is never Stalled (docs/design.md §5); Reconciling says Lethe retries.
	if condition(ds, retentionv1.ConditionStalled) != nil {
		t.Errorf("an unreachable store must not be Stalled: %+v", ds.Status.Conditions)
	}
	if !hasCondition(ds, retentionv1.ConditionReconciling, metav1.ConditionTrue, "") {
		t.Errorf("Reconciling should be True while retrying: %+v", ds.Status.Conditions)
	}
}

func TestDataStoreDeletionWaitsForDatasets(t *testing.T) {
	startLethe(t, time.Minute)
	ns := namespace(t)
	postgresStore(t, ns, "db")
	storeKey := &retentionv1.DataStore{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db"}}
	waitFor(t, storeKey, 30*time.Second, "Ready with the in-use finalizer", func(d *retentionv1.DataStore) bool {
		return hasCondition(d, retentionv1.ConditionReady, metav1.ConditionTrue, retentionv1.ReasonConnected) &&
			slices.Contains(d.Finalizers, controllers.FinalizerInUse)
	})
	for _, name := range []string{"app", "billing"} {
		create(t, &retentionv1.Dataset{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: retentionv1.DatasetSpec{
				DataStoreRef: retentionv1.LocalObjectReference{Name: "db"},
				Collections:  []retentionv1.Collection{{Name: "events"}},
			},
		})
	}
	waitFor(t, storeKey, 30*time.Second, "status.datasets = 2", func(d *retentionv1.DataStore) bool { return d.Status.Datasets == 2 })

	ctx := context.Background()
	if err := env.Client.Delete(ctx, storeKey); err != nil {
		t.Fatal(err)
	}
	ds := waitFor(t, storeKey, 30*time.Second, "deletion blocked: Ready=False InUse", func(d *retentionv1.DataStore) bool {
		return !d.DeletionTimestamp.IsZero() && hasCondition(d, retentionv1.ConditionReady, metav1.ConditionFalse, retentionv1.ReasonInUse)
	})
	if msg := condition(ds, retentionv1.ConditionReady).Message; !strings.Contains(msg, "2 Datasets") || !strings.Contains(msg, "app") || !strings.Contains(msg, "billing") {
		t.Errorf("InUse message should count and name the Datasets: %q", msg)
	}
	if condition(ds, retentionv1.ConditionStalled) != nil || condition(ds, retentionv1.ConditionReconciling) != nil {
		t.Errorf("InUse is neither Stalled nor Reconciling: %+v", ds.Status.Conditions)
	}
	// A Dataset using a store being deleted is not Ready.
	waitFor(t, &retentionv1.Dataset{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app"}}, 30*time.Second, "Dataset DataStoreNotReady",
		func(d *retentionv1.Dataset) bool {
			return hasCondition(d, retentionv1.ConditionReady, metav1.ConditionFalse, retentionv1.ReasonDataStoreNotReady)
		})

	if err := env.Client.Delete(ctx, &retentionv1.Dataset{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app"}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, storeKey, 30*time.Second, "one Dataset left", func(d *retentionv1.DataStore) bool {
		return d.Status.Datasets == 1 && strings.Contains(condition(d, retentionv1.ConditionReady).Message, "1 Datasets")
	})
	if err := env.Client.Delete(ctx, &retentionv1.Dataset{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "billing"}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := env.Client.Get(ctx, client.ObjectKeyFromObject(storeKey), &retentionv1.DataStore{})
		if apierrors.IsNotFound(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("DataStore still exists after its last Dataset was deleted (err %v)", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Secrets by consent: a DataStore can use only a Secret labelled
// retention.lethe.dev/secret=true; an unmarked Secret stalls it
// (SecretNotMarked) before any connection, a Secret without a password
// stalls it (InvalidSecret) instead of logging in as the manager's own user,
// and nothing read from a Secret (such as the user name) reaches the status.
func TestDataStoreUsesOnlyMarkedSecrets(t *testing.T) {
	startManager(t, controllers.Options{})
	ns := namespace(t)
	pg := testharness.Postgres(t)
	store := func(name, secret string) {
		create(t, &retentionv1.DataStore{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: retentionv1.DataStoreSpec{
				Type: retentionv1.DataStorePostgreSQL, Host: pg.Host, Port: ptr.To(int32(pg.Port)),
				Database: retentionv1.Identifier(pg.Database), TLS: retentionv1.TLSDisable,
				CredentialsSecretRef: &retentionv1.SecretReference{Name: secret},
			},
		})
	}
	wait := func(name, reason string) *retentionv1.DataStore {
		return waitFor(t, &retentionv1.DataStore{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}, 30*time.Second,
			"Stalled "+reason, func(d *retentionv1.DataStore) bool {
				return hasCondition(d, retentionv1.ConditionStalled, metav1.ConditionTrue, reason)
			})
	}
	// The admin's Secret, valid credentials, without the label.
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "prod-db-creds"},
		StringData: map[string]string{"username": pg.User, "password": pg.Password}})
	store("unmarked", "prod-db-creds")
	ds := wait("unmarked", retentionv1.ReasonSecretNotMarked)
	if c := condition(ds, retentionv1.ConditionStalled); !strings.Contains(c.Message, `lacks the label retention.lethe.dev/secret="true"`) {
		t.Errorf("message: %q", c.Message)
	}
	if ds.Status.ServerVersion != "" {
		t.Errorf("connected with an unmarked Secret: %q", ds.Status.ServerVersion)
	}

	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "no-password", Labels: marked()},
		StringData: map[string]string{"username": pg.User}})
	store("no-password", "no-password")
	ds = wait("no-password", retentionv1.ReasonInvalidSecret)
	if c := condition(ds, retentionv1.ConditionStalled); !strings.Contains(c.Message, `Secret "no-password" needs both keys username and password`) {
		t.Errorf("message: %q", c.Message)
	}

	// Wrong credentials: the status names neither the user nor the password.
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "wrong", Labels: marked()},
		StringData: map[string]string{"username": "lethe_secret_user_4711", "password": "lethe-secret-password-4711"}})
	store("wrong", "wrong")
	ds = wait("wrong", retentionv1.ReasonAuthenticationFailed)
	for _, c := range ds.Status.Conditions {
		if strings.Contains(c.Message, "4711") {
			t.Errorf("condition %s shows what the Secret holds: %q", c.Type, c.Message)
		}
	}

	// Once the Secret owner labels it, the DataStore connects, and its
	// status warns that the connection is not verified.
	var s corev1.Secret
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "prod-db-creds"}, &s); err != nil {
		t.Fatal(err)
	}
	s.Labels = marked()
	if err := env.Client.Update(context.Background(), &s); err != nil {
		t.Fatal(err)
	}
	touch(t, &retentionv1.DataStore{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "unmarked"}})
	ds = waitFor(t, &retentionv1.DataStore{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "unmarked"}}, 30*time.Second,
		"Ready", func(d *retentionv1.DataStore) bool {
			return hasCondition(d, retentionv1.ConditionReady, metav1.ConditionTrue, retentionv1.ReasonConnected)
		})
	if !hasCondition(ds, retentionv1.ConditionTLSVerified, metav1.ConditionFalse, retentionv1.ReasonInsecureConnection) {
		t.Errorf("tls: Disable without a warning condition: %+v", ds.Status.Conditions)
	}
}

// TLS is verified by default: against the throwaway PostgreSQL, whose
// certificate a throwaway authority signed, a DataStore without tls set is
// refused (Stalled TLSVerificationFailed, no credentials sent) and connects
// once caBundleSecretRef names that authority's certificate
// (TLSVerified=True).
func TestDataStoreVerifiesTLSByDefault(t *testing.T) {
	startManager(t, controllers.Options{})
	ns := namespace(t)
	pg := testharness.Postgres(t)
	if len(pg.CACert) == 0 {
		t.Fatal("the test server has no certificate authority (LETHE_TEST_POSTGRES_DSN?): this test needs the throwaway server of internal/testharness")
	}
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "creds", Labels: marked()},
		StringData: map[string]string{"username": pg.User, "password": pg.Password}})
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ca", Labels: marked()},
		Data: map[string][]byte{"ca.crt": pg.CACert}})
	spec := func() retentionv1.DataStoreSpec {
		return retentionv1.DataStoreSpec{
			Type: retentionv1.DataStorePostgreSQL, Host: pg.Host, Port: ptr.To(int32(pg.Port)),
			Database: retentionv1.Identifier(pg.Database), CredentialsSecretRef: &retentionv1.SecretReference{Name: "creds"},
		}
	}
	create(t, &retentionv1.DataStore{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "default"}, Spec: spec()})
	withCA := spec()
	withCA.CABundleSecretRef = &retentionv1.SecretKeySelector{Name: "ca", Key: "ca.crt"}
	create(t, &retentionv1.DataStore{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "with-ca"}, Spec: withCA})

	refused := waitFor(t, &retentionv1.DataStore{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "default"}}, 30*time.Second,
		"Stalled TLSVerificationFailed", func(d *retentionv1.DataStore) bool {
			return hasCondition(d, retentionv1.ConditionStalled, metav1.ConditionTrue, retentionv1.ReasonTLSVerificationFailed)
		})
	if c := condition(refused, retentionv1.ConditionStalled); !strings.Contains(c.Message, "signed by an authority that is not trusted") {
		t.Errorf("message: %q", c.Message)
	}
	if refused.Status.ServerVersion != "" {
		t.Errorf("an unverified server answered: %q", refused.Status.ServerVersion)
	}
	ok := waitFor(t, &retentionv1.DataStore{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "with-ca"}}, 30*time.Second,
		"Ready with the CA bundle", func(d *retentionv1.DataStore) bool {
			return hasCondition(d, retentionv1.ConditionReady, metav1.ConditionTrue, retentionv1.ReasonConnected)
		})
	if !hasCondition(ok, retentionv1.ConditionTLSVerified, metav1.ConditionTrue, retentionv1.ReasonTLSVerified) {
		t.Errorf("conditions: %+v", ok.Status.Conditions)
	}
}
