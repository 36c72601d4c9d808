package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Condition types shared by every kind (docs/design.md §5): Ready is always present
// once an object has been seen; Reconciling and Stalled are present only while
// True, so kstatus, Flux health checks and kubectl wait read them correctly.
const (
	ConditionReady       = "Ready"
	ConditionReconciling = "Reconciling"
	ConditionStalled     = "Stalled"
)

// Reasons shared by several kinds. Reasons are PascalCase; messages are for
// humans and never carry personal data.
const (
	ReasonProgressing    = "Progressing"
	ReasonSucceeded      = "Succeeded"
	ReasonInvalidSpec    = "InvalidSpec"
	ReasonSecretNotFound = "SecretNotFound"
	// ReasonSecretNotMarked: the referenced Secret lacks the label
	// retention.lethe.dev/secret=true (LabelSecretConsent).
	ReasonSecretNotMarked = "SecretNotMarked"
	// ReasonInvalidSecret: the referenced Secret lacks a key the referrer
	// needs, or holds an invalid value (a CA bundle that is not PEM).
	ReasonInvalidSecret       = "InvalidSecret"
	ReasonSafetyLimitExceeded = "SafetyLimitExceeded"
	ReasonLegalHold           = "LegalHold"
	ReasonDataStoreNotReady   = "DataStoreNotReady"
	ReasonDatasetNotFound     = "DatasetNotFound"
)

// DataStore reasons.
const (
	ReasonConnected            = "Connected"
	ReasonConnectionFailed     = "ConnectionFailed"
	ReasonAuthenticationFailed = "AuthenticationFailed"
	ReasonInUse                = "InUse"
	// ReasonNetworkNotAllowed: the manager's network policy
	// (--datastore-allowed-networks, --datastore-denied-networks) does not
	// allow an address the DataStore's host resolves to; nothing was sent.
	ReasonNetworkNotAllowed = "NetworkNotAllowed"

	// ConditionTLSVerified says whether Lethe verifies the server's identity
	// before sending credentials: True (ReasonTLSVerified) with tls
	// VerifyFull, False (ReasonInsecureConnection) with Disable or Require.
	ConditionTLSVerified     = "TLSVerified"
	ReasonTLSVerified        = "Verified"
	ReasonInsecureConnection = "InsecureConnection"
	// ReasonTLSVerificationFailed: the server's certificate did not verify
	// against the DataStore's CA bundle (or the system's roots) and host.
	ReasonTLSVerificationFailed = "TLSVerificationFailed"
)

// Object is a Lethe object whose status carries conditions.
// +kubebuilder:object:generate=false
type Object interface {
	metav1.Object
	GetConditions() []metav1.Condition
	SetConditions([]metav1.Condition)
}

// MarkReady sets Ready=True and clears Reconciling and Stalled.
func MarkReady(o Object, reason, message string) {
	set(o, ConditionReady, metav1.ConditionTrue, reason, message)
	remove(o, ConditionReconciling)
	remove(o, ConditionStalled)
}

// MarkReconciling sets Reconciling=True and Ready=False (work in progress),
// and clears Stalled.
func MarkReconciling(o Object, reason, message string) {
	set(o, ConditionReconciling, metav1.ConditionTrue, reason, message)
	set(o, ConditionReady, metav1.ConditionFalse, reason, message)
	remove(o, ConditionStalled)
}

// MarkStalled sets Stalled=True and Ready=False: progress needs a human
// (invalid spec, missing Secret, safety limit, legal hold). Transient errors
// must use MarkNotReady instead.
func MarkStalled(o Object, reason, message string) {
	set(o, ConditionStalled, metav1.ConditionTrue, reason, message)
	set(o, ConditionReady, metav1.ConditionFalse, reason, message)
	remove(o, ConditionReconciling)
}

// MarkNotReady sets Ready=False for a transient problem that retrying may
// fix, clearing Stalled, with Reconciling=True because Lethe keeps retrying.
func MarkNotReady(o Object, reason, message string) {
	MarkReconciling(o, reason, message)
}

// MarkSuspended sets Ready=False for work a user paused on purpose
// (a PurgeJob's spec.suspend): not in progress, not stuck, so Reconciling
// and Stalled are cleared.
func MarkSuspended(o Object, reason, message string) {
	set(o, ConditionReady, metav1.ConditionFalse, reason, message)
	remove(o, ConditionReconciling)
	remove(o, ConditionStalled)
}

// SetCondition sets a kind-specific condition (for example Approved or Held).
func SetCondition(o Object, condType string, status metav1.ConditionStatus, reason, message string) {
	set(o, condType, status, reason, message)
}

// RemoveCondition removes a condition.
func RemoveCondition(o Object, condType string) { remove(o, condType) }

// IsReady reports whether Ready is True for the current generation.
func IsReady(o Object) bool {
	c := meta.FindStatusCondition(o.GetConditions(), ConditionReady)
	return c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration == o.GetGeneration()
}

func set(o Object, condType string, status metav1.ConditionStatus, reason, message string) {
	conds := o.GetConditions()
	meta.SetStatusCondition(&conds, metav1.Condition{
		Type:               condType,
		Status:             status,
		Reason:             reason,
		Message:            message,
		ObservedGeneration: o.GetGeneration(),
	})
	o.SetConditions(conds)
}

func remove(o Object, condType string) {
	conds := o.GetConditions()
	meta.RemoveStatusCondition(&conds, condType)
	o.SetConditions(conds)
}
