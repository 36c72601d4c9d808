package signature

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/outcome"
)

var key = []byte("test-digest-key-0123456789abcdef0123")

func job() *retentionv1.PurgeJob {
	return &retentionv1.PurgeJob{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "erase-app-1",
			Annotations: map[string]string{retentionv1.AnnotationDeletionRequests: "ada,alan"}},
		Spec: retentionv1.PurgeJobSpec{
			DatasetRef:        retentionv1.LocalObjectReference{Name: "app"},
			Mode:              retentionv1.ModeEnforce,
			SubjectsSecretRef: &retentionv1.SecretReference{Name: "erase-app-1"},
			Operations:        []retentionv1.Operation{{Collection: "users", Action: retentionv1.ActionDelete, BySubject: true}},
		},
	}
}

// Any change to what decides what a job does breaks its signature.
func TestSigned(t *testing.T) {
	subjects := map[string][]byte{"user_id": []byte("usr_ada_1815")}
	cases := []struct {
		name   string
		change func(*retentionv1.PurgeJob)
		key    []byte
		want   bool
	}{
		{"as signed", func(*retentionv1.PurgeJob) {}, key, true},
		{"batch size filled in by the API server", func(j *retentionv1.PurgeJob) { j.Spec.BatchSize = 1000 }, key, true},
		{"a fixed batch size set", func(j *retentionv1.PurgeJob) { j.Spec.BatchSize = 5000 }, key, false},
		{"other key", func(*retentionv1.PurgeJob) {}, []byte("another-digest-key-0123456789abcdef"), false},
		{"renamed", func(j *retentionv1.PurgeJob) { j.Name = "erase-app-2" }, key, false},
		{"other namespace", func(j *retentionv1.PurgeJob) { j.Namespace = "other" }, key, false},
		{"other Dataset", func(j *retentionv1.PurgeJob) { j.Spec.DatasetRef.Name = "billing" }, key, false},
		{"other action", func(j *retentionv1.PurgeJob) { j.Spec.Operations[0].Action = retentionv1.ActionAnonymize }, key, false},
		{"suspended by the user", func(j *retentionv1.PurgeJob) { j.Spec.Suspend = true }, key, true},
		{"suspended and another change", func(j *retentionv1.PurgeJob) { j.Spec.Suspend = true; j.Spec.BatchSize = 5 }, key, false},
		{"other mode", func(j *retentionv1.PurgeJob) { j.Spec.Mode = retentionv1.ModeDryRun }, key, false},
		{"other batch size", func(j *retentionv1.PurgeJob) { j.Spec.BatchSize = 999 }, key, false},
		{"a cutoff added", func(j *retentionv1.PurgeJob) { c := metav1.Now(); j.Spec.Cutoff = &c }, key, false},
		{"safety limits added", func(j *retentionv1.PurgeJob) { j.Spec.Safety = &retentionv1.SafetyLimits{} }, key, false},
		{"another request named", func(j *retentionv1.PurgeJob) { j.Annotations[retentionv1.AnnotationDeletionRequests] += ",eve" }, key, false},
		{"subjects digest replaced", func(j *retentionv1.PurgeJob) {
			j.Annotations[retentionv1.AnnotationSubjectsDigest] = SubjectsDigest(key, map[string][]byte{"user_id": []byte("eve")})
		}, key, false},
		{"no signature", func(j *retentionv1.PurgeJob) { delete(j.Annotations, retentionv1.AnnotationSignature) }, key, false},
		{"unknown version", func(j *retentionv1.PurgeJob) {
			j.Annotations[retentionv1.AnnotationSignature] = "v0:" + j.Annotations[retentionv1.AnnotationSignature][3:]
		}, key, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			j := job()
			if err := Sign(key, j, subjects); err != nil {
				t.Fatal(err)
			}
			tc.change(j)
			if got := Signed(tc.key, j); got != tc.want {
				t.Errorf("Signed = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSubjectsDigest(t *testing.T) {
	a := SubjectsDigest(key, map[string][]byte{"email": []byte("a"), "user_id": []byte("1")})
	if b := SubjectsDigest(key, map[string][]byte{"user_id": []byte("1"), "email": []byte("a")}); a != b {
		t.Error("the digest depends on map order")
	}
	// Keys and values are length-prefixed: moving a byte across the
	// boundary changes the digest.
	if SubjectsDigest(key, map[string][]byte{"email": []byte("a1")}) == SubjectsDigest(key, map[string][]byte{"email1": []byte("a")}) {
		t.Error("a byte moved from value to key keeps the digest")
	}
	if SubjectsDigest(key, nil) == SubjectsDigest([]byte("another-digest-key-0123456789abcdef"), nil) {
		t.Error("the digest does not depend on the key")
	}
}

// Verify refuses a job without a signature, with a broken one, or whose
// subjects Secret is not the one it was signed with: each an UnsignedPurgeJob
// stall. A missing Secret is an error like any Secret read.
func TestVerify(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := corev1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	subjects := map[string][]byte{"user_id": []byte("usr_ada_1815")}
	secret := func(data map[string][]byte) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "erase-app-1",
			Labels: map[string]string{retentionv1.LabelSecretConsent: "true"}}, Data: data}
	}
	cases := []struct {
		name    string
		before  func(*retentionv1.PurgeJob) // before signing
		after   func(*retentionv1.PurgeJob) // after signing
		secret  *corev1.Secret
		wantErr bool
		stall   bool
	}{
		{"signed, its Secret", nil, nil, secret(subjects), false, false},
		{"signed, no subjects", func(j *retentionv1.PurgeJob) { j.Spec.SubjectsSecretRef = nil }, nil, nil, false, false},
		{"unsigned", nil, func(j *retentionv1.PurgeJob) { delete(j.Annotations, retentionv1.AnnotationSignature) }, secret(subjects), true, true},
		{"changed after signing", nil, func(j *retentionv1.PurgeJob) { j.Spec.Mode = retentionv1.ModeDryRun }, secret(subjects), true, true},
		{"other subjects", nil, nil, secret(map[string][]byte{"user_id": []byte("eve")}), true, true},
		{"Secret missing", nil, nil, nil, true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := fake.NewClientBuilder().WithScheme(scheme)
			if tc.secret != nil {
				b = b.WithObjects(tc.secret)
			}
			j := job()
			if tc.before != nil {
				tc.before(j)
			}
			if err := Sign(key, j, subjects); err != nil {
				t.Fatal(err)
			}
			if tc.after != nil {
				tc.after(j)
			}
			err := Verify(context.Background(), b.Build(), key, j)
			if (err != nil) != tc.wantErr {
				t.Fatalf("Verify = %v, want error %v", err, tc.wantErr)
			}
			if st := outcome.AsStall(err); (st != nil) != tc.stall || (st != nil && st.Reason != retentionv1.ReasonUnsignedPurgeJob) {
				t.Errorf("Verify = %v, want a stall %v", err, tc.stall)
			}
		})
	}
}

// A signature made before spec.suspend existed still matches: suspend is
// left out of what is signed, also when it is true. The value is the
// signature of job() computed by the code before the field was added.
func TestSignatureOfUnsuspendedJobIsUnchanged(t *testing.T) {
	const before = "v1:b26414921a3700a7f8509d1e5eb0bcfd4a2a20c759bc7b7a6892423194d17323"
	for _, suspend := range []bool{false, true} {
		j := job()
		j.Spec.Suspend = suspend
		if err := Sign(key, j, map[string][]byte{"user_id": []byte("usr_ada_1815")}); err != nil {
			t.Fatal(err)
		}
		if got := j.Annotations[retentionv1.AnnotationSignature]; got != before {
			t.Errorf("suspend=%v: signature %s, want %s", suspend, got, before)
		}
	}
}
