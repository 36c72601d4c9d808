package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// LegalHoldSpec says which data must be kept, whatever any policy or request
// says, until the hold is released or expires. A hold with subjects keeps
// only those subjects' records; a hold without subjects keeps every record of
// the Datasets, collections or categories it names.
// +kubebuilder:validation:XValidation:rule="(has(self.subjects) && size(self.subjects) > 0) || has(self.subjectsSecretRef) || (has(self.datasets) && size(self.datasets) > 0) || (has(self.collections) && size(self.collections) > 0) || (has(self.categories) && size(self.categories) > 0)",message="a hold needs a scope: subjects, subjectsSecretRef, datasets, collections or categories"
type LegalHoldSpec struct {
	// Reason, for humans (a case number, not personal data).
	// +optional
	// +kubebuilder:validation:MaxLength=512
	Reason string `json:"reason,omitempty"`

	// Subjects held, inline. Prefer subjectsSecretRef.
	// +optional
	// +kubebuilder:validation:MaxItems=256
	// +listType=atomic
	Subjects []SubjectIdentity `json:"subjects,omitempty"`

	// SubjectsSecretRef names a Secret in the same namespace whose keys are
	// identity types and whose values are newline-separated identifiers. The
	// Secret must carry the label retention.lethe.dev/secret: "true".
	// +optional
	SubjectsSecretRef *SecretReference `json:"subjectsSecretRef,omitempty"`

	// Datasets the hold applies to (default: all of the namespace).
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +listType=set
	Datasets []ObjectName `json:"datasets,omitempty"`

	// Collections the hold applies to, by name (default: all).
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +listType=set
	Collections []Identifier `json:"collections,omitempty"`

	// Categories the hold applies to (default: all).
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +listType=set
	Categories []Category `json:"categories,omitempty"`

	// ExpiresAt ends the hold automatically; from 1970 to 2200.
	// +optional
	// +kubebuilder:validation:XValidation:rule="self >= timestamp('1970-01-01T00:00:00Z') && self < timestamp('2201-01-01T00:00:00Z')",message="must be a date from 1970-01-01 to 2200-12-31"
	ExpiresAt *metav1.Time `json:"expiresAt,omitempty"`

	// Released ends the hold now, keeping the object as a record.
	// +optional
	Released bool `json:"released,omitempty"`
}

// LegalHoldStatus is the observed state of a LegalHold.
type LegalHoldStatus struct {
	// ObservedGeneration is the generation the status was computed for.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Phase: Active, Expired or Released.
	// +optional
	Phase LegalHoldPhase `json:"phase,omitempty"`

	// Conditions: Ready, Reconciling, Stalled (SecretNotFound,
	// DerivationFailed…), Active, IdentitiesDerived.
	// +optional
	// +listType=atomic
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// Subjects is how many subject identifiers the hold names.
	// +optional
	Subjects int32 `json:"subjects,omitempty"`

	// Derived is how many further identifiers of the held subjects Lethe
	// derived from the stores (a user_id's email, read from a table holding
	// both), which the hold holds too. The values are kept only in the
	// hold's own Secret <hold>-derived, owned by the hold; the
	// IdentitiesDerived condition says which types and how.
	// +optional
	Derived int32 `json:"derived,omitempty"`

	// Blocking lists what the hold currently holds back, as kind/name:
	// DeletionRequests it stalls and PurgeJobs (retention runs and erasures)
	// it keeps records or whole collections out of.
	// +optional
	// +listType=set
	Blocking []string `json:"blocking,omitempty"`
}

// LegalHold keeps matching subjects, Datasets, collections or categories from
// being deleted or anonymized until it is released or expires. Holds always
// win over policies and requests.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=lh;hold,categories=lethe
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Subjects",type=integer,JSONPath=`.status.subjects`
// +kubebuilder:printcolumn:name="Derived",type=integer,JSONPath=`.status.derived`,priority=1
// +kubebuilder:printcolumn:name="Expires",type=string,JSONPath=`.spec.expiresAt`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type LegalHold struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is what the hold keeps.
	// +required
	Spec LegalHoldSpec `json:"spec"`

	// Status reports whether the hold is active and what it blocks.
	// +optional
	Status LegalHoldStatus `json:"status,omitempty"`
}

// LegalHoldList is a list of LegalHolds.
// +kubebuilder:object:root=true
type LegalHoldList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []LegalHold `json:"items"`
}

func init() {
	SchemeBuilder.Register(&LegalHold{}, &LegalHoldList{})
}
