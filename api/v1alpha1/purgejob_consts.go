package v1alpha1

// PurgeJobPhase is the phase of a PurgeJob, and of each of its operations.
// +kubebuilder:validation:Enum=Pending;Running;Suspended;Succeeded;Failed;Stalled;Held
type PurgeJobPhase string

// PurgeJob phases.
const (
	PurgeJobPending   PurgeJobPhase = "Pending"
	PurgeJobRunning   PurgeJobPhase = "Running"
	PurgeJobSucceeded PurgeJobPhase = "Succeeded"
	PurgeJobFailed    PurgeJobPhase = "Failed"
	PurgeJobStalled   PurgeJobPhase = "Stalled"
	// PurgeJobSuspended: spec.suspend holds the job at a batch boundary (or
	// before it starts); Ready is False with reason Suspended.
	PurgeJobSuspended PurgeJobPhase = "Suspended"
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
	// ReasonResumed: spec.suspend was cleared; the job continues from its
	// checkpoint (an event; Suspended is the reason while it is set).
	ReasonResumed = "Resumed"
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

// The Throttled condition of a PurgeJob: True while a running job waits at
// a batch boundary for its DataStore (health, window), False while it runs.
// Its reasons say what it waits for; the message gives the measured value
// and the limit.
const (
	ConditionThrottled = "Throttled"
	// ReasonNotThrottled: the job's last batch ran.
	ReasonNotThrottled = "NotThrottled"
	// ReasonOutsideWindow: the DataStore's purge windows (spec.windows) are
	// closed; status.resumeAt is when the next one opens.
	ReasonOutsideWindow = "OutsideWindow"
	// ReasonReplicationLag: a replica of the DataStore lags over the limit.
	ReasonReplicationLag = "ReplicationLag"
	// ReasonActiveSessions: more sessions are active than the limit.
	ReasonActiveSessions = "ActiveSessions"
	// ReasonLockWaiters: more sessions wait for locks than the limit.
	ReasonLockWaiters = "LockWaiters"
	// ReasonThreadsRunning: MySQL's Threads_running is over the limit.
	ReasonThreadsRunning = "ThreadsRunning"
	// ReasonHealthUnknown: the store's health could not be read; a store
	// whose health cannot be read is treated as unhealthy.
	ReasonHealthUnknown = "HealthUnknown"
)

// The CountsVerified condition of a succeeded Enforce PurgeJob: whether a
// count after its last batch proves its totals exact (see
// PurgeJobStatus.Conditions and internal/executor/recount.go).
const (
	ConditionCountsVerified = "CountsVerified"
	// ReasonVerified: what is left in every operation's scope agrees with
	// the counts in status.
	ReasonVerified = "Verified"
	// ReasonCountedByBatches: every total is the sum of the counts the
	// store returned inside the committed batches, all counted by the
	// manager that ran them; nothing had to be recounted, so what is left
	// was not counted (safety.verifyCounts AfterRecount, the default).
	ReasonCountedByBatches = "CountedByBatches"
	// ReasonCountsNotExact: what is left does not agree with the counts;
	// the message gives the expected and found numbers.
	ReasonCountsNotExact = "CountsNotExact"
	// ReasonRecounted (an event): a recount found records deleted by
	// batches whose checkpoint was never written and added them to the
	// totals.
	ReasonRecounted = "Recounted"
)
