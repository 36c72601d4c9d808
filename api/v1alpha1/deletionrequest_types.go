package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ErasureReason is why a subject's data is erased.
// +kubebuilder:validation:Enum=AccountCancellation;SubjectRequest;ConsentWithdrawn;Minor;ServiceTermination;Other
type ErasureReason string

const (
	// ReasonAccountCancellation: the account was cancelled; a 48h review
	// window applies by default.
	ReasonAccountCancellation ErasureReason = "AccountCancellation"
	// ReasonSubjectRequest: the person asked for erasure.
	ReasonSubjectRequest ErasureReason = "SubjectRequest"
	// ReasonConsentWithdrawn: the legal basis (consent) was withdrawn.
	ReasonConsentWithdrawn ErasureReason = "ConsentWithdrawn"
	// ReasonMinor: a child's data was found; erased at once, no review window.
	ReasonMinor ErasureReason = "Minor"
	// ReasonServiceTermination: the service ends.
	ReasonServiceTermination ErasureReason = "ServiceTermination"
	// ReasonOther: any other reason.
	ReasonOther ErasureReason = "Other"
)

// Subject identifies one data subject by one or more identifiers.
// +kubebuilder:validation:XValidation:rule="(has(self.identities) && size(self.identities) > 0) || has(self.identitiesSecretRef)",message="a subject needs at least one identity: identities or identitiesSecretRef"
type Subject struct {
	// Identities of the subject inline. Prefer identitiesSecretRef: inline
	// values are readable by anyone who can read the request.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	// +listType=atomic
	Identities []SubjectIdentity `json:"identities,omitempty"`

	// IdentitiesSecretRef names a Secret in the same namespace whose keys are
	// identity types and whose values are the identifiers (for example
	// email: ada@example.com). The Secret must carry the label
	// retention.lethe.dev/secret: "true". A Secret owned by the request is
	// removed with it.
	// +optional
	IdentitiesSecretRef *SecretReference `json:"identitiesSecretRef,omitempty"`
}

// ErasureScope says which Datasets a request covers.
// +kubebuilder:validation:XValidation:rule="!(has(self.datasets) && has(self.selector))",message="use datasets or selector, not both"
type ErasureScope struct {
	// Datasets by name. Empty (with no selector) means every Dataset of the
	// namespace.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +listType=set
	Datasets []ObjectName `json:"datasets,omitempty"`

	// Selector chooses Datasets by label. Operators are In, NotIn, Exists and
	// DoesNotExist.
	// +optional
	// +kubebuilder:validation:XValidation:rule="!has(self.matchExpressions) || self.matchExpressions.all(e, e.operator in ['In', 'NotIn', 'Exists', 'DoesNotExist'])",message="matchExpressions operator must be In, NotIn, Exists or DoesNotExist"
	// +kubebuilder:validation:XValidation:rule="!has(self.matchExpressions) || self.matchExpressions.all(e, e.operator in ['Exists', 'DoesNotExist'] ? (!has(e.values) || size(e.values) == 0) : (has(e.values) && size(e.values) > 0))",message="matchExpressions: In and NotIn need values, Exists and DoesNotExist take none"
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
}

// ActionOverride overrides a Dataset's erasure action for one collection.
type ActionOverride struct {
	// Dataset holding the collection.
	// +required
	Dataset ObjectName `json:"dataset"`

	// Collection name in that Dataset.
	// +required
	Collection Identifier `json:"collection"`

	// Action for it.
	// +required
	Action Action `json:"action"`
}

// DeletionRequestSpec names a data subject to erase everywhere in scope. It is
// immutable: create a new request to change anything.
// +kubebuilder:validation:XValidation:rule="self.reason != 'Minor' || !has(self.reviewWindow) || self.reviewWindow.startsWith('0')",message="reason Minor is erased at once: leave reviewWindow unset or 0h"
type DeletionRequestSpec struct {
	// Subject to erase.
	// +required
	Subject Subject `json:"subject"`

	// Reason for the erasure; it sets the default review window.
	// +required
	Reason ErasureReason `json:"reason"`

	// Scope of Datasets (default: every Dataset of the namespace).
	// +optional
	Scope *ErasureScope `json:"scope,omitempty"`

	// ReviewWindow delays execution after creation, for a human review
	// (default 48h for AccountCancellation, 0h otherwise; Minor is always
	// immediate).
	// +optional
	ReviewWindow *WaitDuration `json:"reviewWindow,omitempty"`

	// RequireApproval holds execution until someone other than the creator
	// approves the request. The creator annotates it at creation with
	// retention.lethe.dev/requested-by=<their user name>; the approver adds
	// retention.lethe.dev/approved-by=<their user name>. The admission policy
	// of config/admission checks both names against the API server's
	// authentication, and the approver must hold the RBAC verb approve on
	// deletionrequests. A Dataset in scope with requireApproval, or a
	// namespace labelled retention.lethe.dev/require-approval: "true",
	// requires approval even when this is false.
	// +optional
	RequireApproval bool `json:"requireApproval,omitempty"`

	// Deadline is how long after creation the request must be answered
	// (default 30d). An overdue request is flagged in status and events.
	// +optional
	// +kubebuilder:default="30d"
	Deadline RetentionDuration `json:"deadline,omitempty"`

	// Overrides of the Datasets' erasure action per collection.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +listType=atomic
	Overrides []ActionOverride `json:"overrides,omitempty"`

	// DryRun plans and counts but erases nothing.
	// +optional
	DryRun bool `json:"dryRun,omitempty"`

	// TTLSecondsAfterFinished removes the request (and the identity Secrets
	// it owns) this long after it finished, at most 315360000 (ten years); an
	// erasure-ledger entry of keyed digests remains.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=315360000
	TTLSecondsAfterFinished *int32 `json:"ttlSecondsAfterFinished,omitempty"`
}

// PlannedCollection is one step of an erasure plan.
type PlannedCollection struct {
	// Dataset erased in this step.
	Dataset string `json:"dataset"`

	// Collection erased in this step.
	Collection string `json:"collection"`

	// Action taken.
	Action Action `json:"action"`

	// Order of the step; lower runs first (children before parents).
	Order int32 `json:"order"`

	// Via is how the subject is reached: an identity field or a reference path.
	// +optional
	Via string `json:"via,omitempty"`

	// Matched is how many of the subject's records the collection held when
	// counted just before erasure.
	// +optional
	Matched *int64 `json:"matched,omitempty"`

	// Fallback says why the action differs from the Dataset's: for example
	// "Anonymize instead of Delete: 2 records of orders refer to these records
	// (orders_quote_id_fkey)".
	// +optional
	Fallback string `json:"fallback,omitempty"`
}

// ReceiptEntry records what was done in one collection.
type ReceiptEntry struct {
	// Dataset holding the collection.
	Dataset string `json:"dataset"`

	// Collection erased.
	Collection string `json:"collection"`

	// Action taken: Delete or Anonymize.
	Action Action `json:"action"`

	// Rows deleted or anonymized.
	Rows int64 `json:"rows"`

	// CompletedAt is when the PurgeJob that erased the collection (or, in a
	// dry run, counted it) finished.
	// +optional
	CompletedAt *metav1.Time `json:"completedAt,omitempty"`
}

// Receipt is the proof of an erasure.
type Receipt struct {
	// SubjectDigest is the keyed digest (HMAC-SHA256) of the subject's
	// identities; never the identities themselves.
	SubjectDigest string `json:"subjectDigest"`

	// Entries per collection.
	// +optional
	Entries []ReceiptEntry `json:"entries,omitempty"`

	// Verified says the verification pass found no identifiable record left.
	Verified bool `json:"verified"`

	// CompletedAt is when the erasure finished.
	// +optional
	CompletedAt *metav1.Time `json:"completedAt,omitempty"`

	// SHA256 of the canonical JSON of the receipt without this field and
	// without acknowledgements (which arrive later): the erasure ledger
	// records it at completion.
	// +optional
	SHA256 string `json:"sha256,omitempty"`

	// Acknowledgements of the erasure notice by the Recipients, as they
	// arrive (not covered by sha256).
	// +optional
	// +listType=atomic
	Acknowledgements []NoticeAcknowledgement `json:"acknowledgements,omitempty"`
}

// NoticeAcknowledgement records that a Recipient acknowledged the erasure
// notice.
type NoticeAcknowledgement struct {
	// Recipient that acknowledged.
	Recipient string `json:"recipient"`

	// NoticeID is the notice's webhook-id.
	NoticeID string `json:"noticeID"`

	// AcknowledgedAt is when Lethe received (Response) or verified (Async)
	// the acknowledgement.
	AcknowledgedAt metav1.Time `json:"acknowledgedAt"`
}

// RecipientNotice is where the erasure notice to one Recipient stands. It
// carries no identities: the notice's body is kept in the request's Secret
// <request>-notices until every notice is final.
type RecipientNotice struct {
	// Name of the Recipient.
	Name string `json:"name"`

	// NoticeID is the notice's webhook-id, the same on every attempt (a
	// receiver deduplicates on it).
	NoticeID string `json:"noticeID"`

	// State: Pending, Notified (delivered, an Async acknowledgement is
	// awaited), Acknowledged or Failed.
	State NoticeState `json:"state"`

	// Attempts made so far (deliveries, then acknowledgement polls).
	// +optional
	Attempts int32 `json:"attempts,omitempty"`

	// LastAttemptTime is when the last attempt was made.
	// +optional
	LastAttemptTime *metav1.Time `json:"lastAttemptTime,omitempty"`

	// NextAttemptTime is when the next attempt is due (exponential backoff
	// with jitter); unset once the state is final.
	// +optional
	NextAttemptTime *metav1.Time `json:"nextAttemptTime,omitempty"`

	// DeadlineTime: the notice fails if it is not acknowledged by then (the
	// request's deadline, or one day after completion if that is later).
	// +optional
	DeadlineTime *metav1.Time `json:"deadlineTime,omitempty"`

	// Reason of the last outcome (NoticeDelivered, DeliveryFailed,
	// ForgedAcknowledgement, NoticeAcknowledged, NoticeDeadlineExceeded…).
	// +optional
	Reason string `json:"reason,omitempty"`

	// Message says what happened last, without identities or anything the
	// endpoint answered beyond its status code.
	// +optional
	Message string `json:"message,omitempty"`
}

// DeletionRequestStatus is the observed state of a DeletionRequest.
type DeletionRequestStatus struct {
	// ObservedGeneration is the generation the status was computed for.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Phase: Pending, Reviewing, AwaitingApproval, Held, Queued (waiting, at
	// most a fraction of a second, to be erased together with other requests
	// in one set-based PurgeJob), Running, Completed, Failed.
	// +optional
	Phase DeletionRequestPhase `json:"phase,omitempty"`

	// Conditions: Ready, Reconciling, Stalled, ReviewWindowPassed, Approved,
	// Held, DeadlineMet, and once completed RecipientsNotified and
	// BackupsExpired.
	// +optional
	// +listType=atomic
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// SubjectDigest is the keyed digest of the subject's identities.
	// +optional
	SubjectDigest string `json:"subjectDigest,omitempty"`

	// NotBefore is when the review window ends.
	// +optional
	NotBefore *metav1.Time `json:"notBefore,omitempty"`

	// DeadlineTime is when the request must be answered by.
	// +optional
	DeadlineTime *metav1.Time `json:"deadlineTime,omitempty"`

	// ApprovedBy is the authenticated user who approved the request.
	// +optional
	ApprovedBy string `json:"approvedBy,omitempty"`

	// HeldBy names the LegalHolds that hold the request back (phase Held);
	// empty otherwise. Each of them lists the request in status.blocking.
	// +optional
	// +listType=set
	HeldBy []string `json:"heldBy,omitempty"`

	// Plan lists the collections to erase, in order.
	// +optional
	Plan []PlannedCollection `json:"plan,omitempty"`

	// PurgeJobs created for this request.
	// +optional
	// +listType=atomic
	PurgeJobs []string `json:"purgeJobs,omitempty"`

	// Receipt of the completed erasure.
	// +optional
	Receipt *Receipt `json:"receipt,omitempty"`

	// CompletionTime is when the request finished.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`

	// Recipients are the parties sent an erasure notice once the erasure
	// completed, each with where its notice stands (no identities).
	// +optional
	// +listType=atomic
	Recipients []RecipientNotice `json:"recipients,omitempty"`

	// BackupsExpireTime is when the last backup that may still hold the
	// subject's erased records expires: the completion time plus the longest
	// spec.backups.retention of the DataStores of the plan. The condition
	// BackupsExpired turns True then.
	// +optional
	BackupsExpireTime *metav1.Time `json:"backupsExpireTime,omitempty"`
}

// DeletionRequest erases one data subject across every Dataset in scope,
// after a review window, approval and legal-hold checks, before a deadline,
// and keeps a receipt.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=dr;delreq,categories=lethe
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.spec.reason`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Deadline",type=string,JSONPath=`.status.deadlineTime`
// +kubebuilder:printcolumn:name="On Time",type=string,JSONPath=`.status.conditions[?(@.type=="DeadlineMet")].status`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Subject",type=string,JSONPath=`.status.subjectDigest`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type DeletionRequest struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec names the subject; immutable.
	// +required
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec is immutable: create a new DeletionRequest instead"
	Spec DeletionRequestSpec `json:"spec"`

	// Status reports gates, plan, progress and receipt.
	// +optional
	Status DeletionRequestStatus `json:"status,omitempty"`
}

// DeletionRequestList is a list of DeletionRequests.
// +kubebuilder:object:root=true
type DeletionRequestList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []DeletionRequest `json:"items"`
}

func init() {
	SchemeBuilder.Register(&DeletionRequest{}, &DeletionRequestList{})
}
