package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AcknowledgementMode says how a Recipient acknowledges an erasure notice.
// +kubebuilder:validation:Enum=Response;Async
type AcknowledgementMode string

const (
	// AcknowledgeResponse: a 2xx answer to the notice is the acknowledgement.
	AcknowledgeResponse AcknowledgementMode = "Response"
	// AcknowledgeAsync: a 2xx answer says the notice arrived; the party
	// acknowledges later with a signed acknowledgement that Lethe fetches
	// from acknowledgement.url and verifies (docs/user-guide.md, "Recipients").
	AcknowledgeAsync AcknowledgementMode = "Async"
)

// RecipientAcknowledgement says how the party acknowledges a notice.
// +kubebuilder:validation:XValidation:rule="!has(self.url) || self.mode == 'Async'",message="acknowledgement.url is used only with mode Async"
type RecipientAcknowledgement struct {
	// Mode: Response (a 2xx answer to the notice acknowledges it) or Async
	// (the party acknowledges later; Lethe polls url with the notice's id
	// and accepts only an acknowledgement signed with the signing secret).
	// +optional
	// +kubebuilder:default=Response
	Mode AcknowledgementMode `json:"mode,omitempty"`

	// URL Lethe polls for an Async acknowledgement (GET with the query
	// parameter notice=<webhook-id>, signed like a notice over an empty
	// body). Default: the endpoint. Same rules as the endpoint: https, no
	// credentials, and the manager's network policy applies.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.matches('^https://[^/@?#]+(/[^@#]*)?$')",message="must be an https URL without credentials or fragment"
	URL string `json:"url,omitempty"`
}

// RecipientSpec declares a party that receives personal data from the
// company (a processor, a partner, an analytics vendor) and must be told when
// a subject's data is erased.
// +kubebuilder:validation:XValidation:rule="(has(self.datasets) && size(self.datasets) > 0) || (has(self.categories) && size(self.categories) > 0)",message="a recipient receives data from some datasets or categories: set datasets, categories or both"
type RecipientSpec struct {
	// Datasets whose data the party receives, by name. A completed
	// DeletionRequest whose plan erased a collection of one of them
	// notifies the party.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +listType=set
	Datasets []ObjectName `json:"datasets,omitempty"`

	// Categories of personal data the party receives: a completed
	// DeletionRequest whose plan erased a collection holding one of them (in
	// the collection's or one of its fields' categories) notifies the party.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	// +listType=set
	Categories []Category `json:"categories,omitempty"`

	// IdentityTypes the party received and needs to find the person (for
	// example email, user_id). A notice carries the subject's identities of
	// these types only; a subject with none of them is not sent to this
	// party.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +listType=set
	IdentityTypes []IdentityType `json:"identityTypes"`

	// Endpoint is the https URL the notices are POSTed to. No credentials in
	// the URL (sign with the signing Secret instead). The connection goes
	// through the manager's network policy (--datastore-allowed-networks and
	// --datastore-denied-networks), like a DataStore's, and follows no
	// redirect.
	// +required
	// +kubebuilder:validation:MinLength=9
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.matches('^https://[^/@?#]+(/[^@#]*)?$')",message="must be an https URL without credentials or fragment"
	Endpoint string `json:"endpoint"`

	// SigningSecretRef names the key of a Secret in the same namespace that
	// holds the Standard Webhooks signing secret, "whsec_" followed by the
	// base64 of 24 to 64 random bytes. The Secret must carry the label
	// retention.lethe.dev/secret: "true". Notices are signed with it, and an
	// Async acknowledgement must be signed with it too.
	// +required
	SigningSecretRef SecretKeySelector `json:"signingSecretRef"`

	// CABundleSecretRef names the key of a Secret in the same namespace that
	// holds PEM certificates to verify the endpoint's certificate with,
	// instead of the system's roots. The Secret must carry the label
	// retention.lethe.dev/secret: "true".
	// +optional
	CABundleSecretRef *SecretKeySelector `json:"caBundleSecretRef,omitempty"`

	// Acknowledgement says how the party acknowledges a notice (default:
	// a 2xx answer).
	// +optional
	// +kubebuilder:default={}
	Acknowledgement RecipientAcknowledgement `json:"acknowledgement,omitempty"`
}

// RecipientStatus is the observed state of a Recipient.
type RecipientStatus struct {
	// ObservedGeneration is the generation the status was computed for.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready (reason Valid: the signing Secret, the CA bundle and
	// the endpoint's address check out), Stalled (InvalidSpec,
	// SecretNotFound, SecretNotMarked, InvalidSecret, NetworkNotAllowed).
	// Ready says nothing about whether the endpoint answers: each
	// DeletionRequest's status.recipients shows its deliveries.
	// +optional
	// +listType=atomic
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// Recipient is a party that receives personal data and is sent a signed
// erasure notice when a DeletionRequest erasing such data completes.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=rcpt,categories=lethe
// +kubebuilder:printcolumn:name="Endpoint",type=string,JSONPath=`.spec.endpoint`
// +kubebuilder:printcolumn:name="Ack",type=string,JSONPath=`.spec.acknowledgement.mode`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Recipient struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec declares what the party receives and where notices go.
	// +required
	Spec RecipientSpec `json:"spec"`

	// Status says whether the declaration checks out.
	// +optional
	Status RecipientStatus `json:"status,omitempty"`
}

// RecipientList is a list of Recipients.
// +kubebuilder:object:root=true
type RecipientList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Recipient `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Recipient{}, &RecipientList{})
}
