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
	"sigs.k8s.io/controller-runtime/pkg/client"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/controllers"
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
			Type: retentionv1.DataStorePostgreSQL, Host: pg.Host, Port: ptr(int32(pg.Port)),
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
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "late-credentials"},
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
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bad-credentials"},
		StringData: map[string]string{"username": "lethe_nobody", "password": "wrong-password"},
	})
	create(t, &retentionv1.DataStore{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bad"},
		Spec: retentionv1.DataStoreSpec{
			Type: retentionv1.DataStorePostgreSQL, Host: pg.Host, Port: ptr(int32(pg.Port)),
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
	create(t, &retentionv1.DataStore{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "nowhere"},
		Spec: retentionv1.DataStoreSpec{
			Type: retentionv1.DataStorePostgreSQL, Host: "127.0.0.1", Port: ptr(int32(1)),
			Database: "app", TLS: retentionv1.TLSDisable,
		},
	})
	ds := waitFor(t, &retentionv1.DataStore{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "nowhere"}}, 30*time.Second,
		"Ready=False ConnectionFailed", func(d *retentionv1.DataStore) bool {
			return hasCondition(d, retentionv1.ConditionReady, metav1.ConditionFalse, retentionv1.ReasonConnectionFailed)
		})
	// A transient error is never Stalled (DESIGN.md §5); Reconciling says Lethe retries.
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
