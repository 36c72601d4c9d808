// Package signature signs the PurgeJobs the manager creates and checks them
// before they run. Lethe runs only the PurgeJobs it created: every PurgeJob
// the manager creates (RetentionPolicy runs, coalesced erasures) carries a
// keyed signature over what decides what the job does: its namespace and
// name, its spec, the DeletionRequests it erases for, and a keyed digest of
// its subjects Secret. The key is derived from the manager's digest key,
// which no namespace user can read. The PurgeJob controller checks the
// signature and the subjects before every slice and fails a job that does
// not match (reason UnsignedPurgeJob) without touching any store;
// DeletionRequests ignore PurgeJobs that are not signed. The
// ValidatingAdmissionPolicy in config/admission/purgejob_creator.yaml keeps
// users from creating PurgeJobs at all; this check holds without it.
package signature

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"sigs.k8s.io/controller-runtime/pkg/client"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/connect"
	"github.com/lethe-dev/lethe/internal/outcome"
)

// signaturePrefix versions the signature's form.
const signaturePrefix = "v1:"

// signingKey separates the signature key from the other uses of the digest key.
func signingKey(key []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("lethe purgejob signature v1"))
	return m.Sum(nil)
}

// SubjectsDigest is a keyed digest of a subjects Secret's data (every key
// and value, in canonical order).
func SubjectsDigest(key []byte, data map[string][]byte) string {
	keys := make([]string, 0, len(data))
	for k := range data {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	m := hmac.New(sha256.New, signingKey(key))
	m.Write([]byte("subjects"))
	for _, k := range keys {
		fmt.Fprintf(m, "\x00%d:%s%d:", len(k), k, len(data[k]))
		m.Write(data[k])
	}
	return "hmac-sha256:" + hex.EncodeToString(m.Sum(nil))
}

// signedContent is the canonical form a PurgeJob signature covers.
type signedContent struct {
	Namespace        string                   `json:"namespace"`
	Name             string                   `json:"name"`
	Spec             retentionv1.PurgeJobSpec `json:"spec"`
	DeletionRequests string                   `json:"deletionRequests"`
	SubjectsDigest   string                   `json:"subjectsDigest"`
}

func compute(key []byte, job *retentionv1.PurgeJob) (string, error) {
	spec := *job.Spec.DeepCopy()
	// Suspend is the user's to flip (docs/design.md §10): it pauses the job
	// but never changes what it does. Omitted when false, so signatures
	// made before the field existed still match.
	spec.Suspend = false
	// An unset batch size (adaptive batches) signs as 1000: until adaptive
	// batches, the API server filled 1000 in (the CRD's default), so the
	// jobs stored then, signed either way, stay valid, and so do new jobs
	// on a cluster whose CRD still has that default. The two differ only in
	// how batches are sized within the DataStore's limits, never in what a
	// job deletes.
	if spec.BatchSize == 0 {
		spec.BatchSize = 1000
	}
	c := signedContent{
		Namespace:        job.Namespace,
		Name:             job.Name,
		Spec:             spec,
		DeletionRequests: job.Annotations[retentionv1.AnnotationDeletionRequests],
		SubjectsDigest:   job.Annotations[retentionv1.AnnotationSubjectsDigest],
	}
	// encoding/json is canonical here: struct fields in declaration order,
	// map keys sorted, times in RFC 3339 at the precision the API keeps.
	b, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	m := hmac.New(sha256.New, signingKey(key))
	m.Write(b)
	return signaturePrefix + hex.EncodeToString(m.Sum(nil)), nil
}

// Sign signs a PurgeJob before it is created: subjects is the data of its
// subjects Secret (nil without one).
func Sign(key []byte, job *retentionv1.PurgeJob, subjects map[string][]byte) error {
	if job.Annotations == nil {
		job.Annotations = map[string]string{}
	}
	delete(job.Annotations, retentionv1.AnnotationSubjectsDigest)
	if job.Spec.SubjectsSecretRef != nil {
		job.Annotations[retentionv1.AnnotationSubjectsDigest] = SubjectsDigest(key, subjects)
	}
	sig, err := compute(key, job)
	if err != nil {
		return err
	}
	job.Annotations[retentionv1.AnnotationSignature] = sig
	return nil
}

// Signed reports whether a PurgeJob's signature matches its namespace, name,
// spec and annotations (not its subjects Secret, which Verify reads).
func Signed(key []byte, job *retentionv1.PurgeJob) bool {
	got := job.Annotations[retentionv1.AnnotationSignature]
	if !strings.HasPrefix(got, signaturePrefix) {
		return false
	}
	want, err := compute(key, job)
	return err == nil && hmac.Equal([]byte(got), []byte(want))
}

// Verify checks that this manager created the job as it is now: the
// signature and, for a job with subjects, the subjects Secret's content. A
// mismatch is an outcome.Stall with reason UnsignedPurgeJob; reading the
// Secret may fail like any Secret read.
func Verify(ctx context.Context, r client.Reader, key []byte, job *retentionv1.PurgeJob) error {
	if _, ok := job.Annotations[retentionv1.AnnotationSignature]; !ok {
		return outcome.Stall(retentionv1.ReasonUnsignedPurgeJob, "This PurgeJob was not created by Lethe (no "+retentionv1.AnnotationSignature+" annotation); nothing was executed. PurgeJobs are created by RetentionPolicies and DeletionRequests")
	}
	if !Signed(key, job) {
		return outcome.Stall(retentionv1.ReasonUnsignedPurgeJob, "This PurgeJob's signature does not match its spec, name or annotations: it was not created by this Lethe manager as it is now; nothing was executed")
	}
	if job.Spec.SubjectsSecretRef == nil {
		return nil
	}
	secret, err := connect.GetSecret(ctx, r, job.Namespace, job.Spec.SubjectsSecretRef.Name)
	if err != nil {
		return err
	}
	if !hmac.Equal([]byte(SubjectsDigest(key, secret.Data)), []byte(job.Annotations[retentionv1.AnnotationSubjectsDigest])) {
		return outcome.Stall(retentionv1.ReasonUnsignedPurgeJob, fmt.Sprintf("The subjects Secret %s is not the one this PurgeJob was created with; nothing was executed", job.Spec.SubjectsSecretRef.Name))
	}
	return nil
}
