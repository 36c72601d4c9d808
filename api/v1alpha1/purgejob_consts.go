package v1alpha1

// PurgeJobPhase is the phase of a PurgeJob, and of each of its operations.
// +kubebuilder:validation:Enum=Pending;Running;Succeeded;Failed;Stalled;Held
type PurgeJobPhase string

// PurgeJob phases.
const (
	PurgeJobPending   PurgeJobPhase = "Pending"
	PurgeJobRunning   PurgeJobPhase = "Running"
	PurgeJobSucceeded PurgeJobPhase = "Succeeded"
	PurgeJobFailed    PurgeJobPhase = "Failed"
	PurgeJobStalled   PurgeJobPhase = "Stalled"
	// OperationHeld marks an operation skipped because a LegalHold keeps its
	// whole collection (status.operations[].phase only).
	OperationHeld PurgeJobPhase = "Held"
)

// PurgeJob condition types and reasons beyond the shared ones.
const (
	ConditionDataStoreAvailable = "DataStoreAvailable"
	ReasonDataStoreUnavailable  = "DataStoreUnavailable"
	ReasonInvalidOperation      = "InvalidOperation"
	ReasonRunning               = "Running"
	ReasonDryRunCompleted       = "DryRunCompleted"
	ReasonWaitingForLegalHold   = "WaitingForLegalHold"
	// ReasonInterrupted: the job failed after it had changed records; it is
	// retried (and resumes exactly) until the cause is fixed.
	ReasonInterrupted = "Interrupted"
	// ReasonUnsignedPurgeJob: the PurgeJob was not created by this manager,
	// or was changed since.
	ReasonUnsignedPurgeJob = "UnsignedPurgeJob"
	// ReasonReferencedOutsideErasure: records outside the erasure refer, by
	// a foreign key, to records it would delete; nothing was changed.
	ReasonReferencedOutsideErasure = "ReferencedOutsideErasure"
)

// PurgeJob annotations and labels.
const (
	// AnnotationReleaseSafetyLimit lets a PurgeJob stopped by its safety
	// limit proceed: set it to "true" on that PurgeJob.
	AnnotationReleaseSafetyLimit = "retention.lethe.dev/release-safety-limit"
	// AnnotationSignature holds the manager's signature of a PurgeJob.
	AnnotationSignature = "retention.lethe.dev/signature"
	// AnnotationSubjectsDigest holds a keyed digest of the subjects Secret a
	// PurgeJob was created with; the signature covers it.
	AnnotationSubjectsDigest = "retention.lethe.dev/subjects-digest"
	// LabelSealedKeys marks the Secret <job>-sealed holding the primary keys
	// a subject erasure sealed before its first change.
	LabelSealedKeys = "retention.lethe.dev/sealed-keys"
)
