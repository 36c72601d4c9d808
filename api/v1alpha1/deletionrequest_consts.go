package v1alpha1

// DeletionRequestPhase is the phase of a DeletionRequest.
// +kubebuilder:validation:Enum=Pending;Reviewing;AwaitingApproval;Held;Queued;Running;Completed;Failed
type DeletionRequestPhase string

// DeletionRequest phases.
const (
	RequestPending          DeletionRequestPhase = "Pending"
	RequestReviewing        DeletionRequestPhase = "Reviewing"
	RequestAwaitingApproval DeletionRequestPhase = "AwaitingApproval"
	RequestHeld             DeletionRequestPhase = "Held"
	RequestQueued           DeletionRequestPhase = "Queued"
	RequestRunning          DeletionRequestPhase = "Running"
	RequestCompleted        DeletionRequestPhase = "Completed"
	RequestFailed           DeletionRequestPhase = "Failed"
)

// DeletionRequest condition types.
const (
	ConditionReviewWindowPassed = "ReviewWindowPassed"
	ConditionApproved           = "Approved"
	ConditionHeld               = "Held"
	ConditionDeadlineMet        = "DeadlineMet"
	// ConditionIdentitiesDerived says which further identities of the subject
	// were read from the stores (on requests and on holds).
	ConditionIdentitiesDerived = "IdentitiesDerived"
	// ConditionUnknownIdentityTypes names identity types that no Dataset in
	// scope declares (a typo, or phone_number where the Datasets say phone).
	ConditionUnknownIdentityTypes = "UnknownIdentityTypes"
)

// DeletionRequest reasons.
const (
	ReasonInReview         = "InReview"
	ReasonWindowPassed     = "WindowPassed"
	ReasonAwaitingApproval = "AwaitingApproval"
	ReasonApproved         = "Approved"
	ReasonSelfApproval     = "SelfApproval"
	// ReasonRequesterUnknown: approval is required (by a Dataset) but the
	// request does not carry retention.lethe.dev/requested-by.
	ReasonRequesterUnknown   = "RequesterUnknown"
	ReasonNotRequired        = "NotRequired"
	ReasonNotHeld            = "NotHeld"
	ReasonOnTrack            = "OnTrack"
	ReasonAnsweredInTime     = "AnsweredInTime"
	ReasonOverdue            = "Overdue"
	ReasonQueued             = "Queued"
	ReasonErasing            = "Erasing"
	ReasonErased             = "Erased"
	ReasonVerificationFailed = "VerificationFailed"
	ReasonErasureFailed      = "ErasureFailed"
	ReasonNothingInScope     = "NothingInScope"
	// ReasonInvalidIdentity: an identity read from the spec or a Secret is
	// not usable (a control character, or a key that is not an identity type).
	ReasonInvalidIdentity = "InvalidIdentity"
	// ReasonDatasetNotReady: a Dataset in scope was validated and found
	// wanting; nothing is erased until it is fixed.
	ReasonDatasetNotReady     = "DatasetNotReady"
	ReasonUnknownIdentityType = "UnknownIdentityType"
	ReasonIdentitiesDerived   = "IdentitiesDerived"
	// ReasonDerivationLimit: an identity type derived more values than the
	// limit allows (the identity is shared), or a hold's Secret would overflow.
	ReasonDerivationLimit  = "DerivationLimit"
	ReasonDerivationFailed = "DerivationFailed"
)

// DeletionRequest annotations and labels, and those of the objects it creates.
const (
	// AnnotationRequestedBy carries the creator's user name; the
	// ValidatingAdmissionPolicy in config/admission checks it against the
	// API server's authentication when approval is required.
	AnnotationRequestedBy = "retention.lethe.dev/requested-by"
	// AnnotationApprovedBy carries the approver's user name, checked the
	// same way: it must be the user making the change, and not the creator.
	AnnotationApprovedBy = "retention.lethe.dev/approved-by"
	// LabelDeletionRequest on PurgeJobs and Secrets names their request.
	LabelDeletionRequest = "retention.lethe.dev/deletion-request"
	// LabelCoalesced marks PurgeJobs and Secrets that erase several requests'
	// subjects together.
	LabelCoalesced = "retention.lethe.dev/coalesced"
	// AnnotationDeletionRequests on a coalesced PurgeJob lists the names of
	// the DeletionRequests it erases, comma-separated. It is how a request
	// finds its jobs after a manager restart and how a finished job wakes its
	// requests.
	AnnotationDeletionRequests = "retention.lethe.dev/deletion-requests"
	// LabelLedger marks the ConfigMaps of the erasure ledger (one line per
	// completed request, keyed digests only).
	LabelLedger = "retention.lethe.dev/ledger"
	// LedgerConfigMap prefixes the names of those ConfigMaps.
	LedgerConfigMap = "lethe-erasure-ledger"
)
