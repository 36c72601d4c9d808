package v1alpha1

// RetentionPolicy annotations, labels and reasons.
const (
	// AnnotationRunNow requests a run now; its value is any token, and each
	// new token starts one run (the run's name derives from it).
	AnnotationRunNow = "retention.lethe.dev/run-now"
	// AnnotationReleaseRun names a run (PurgeJob) stopped by its safety limit
	// that may proceed; it releases that run only.
	AnnotationReleaseRun = "retention.lethe.dev/release-run"
	// AnnotationScheduledTime on a PurgeJob records the instant it ran for.
	AnnotationScheduledTime = "retention.lethe.dev/scheduled-time"
	// LabelPolicy on a PurgeJob names the RetentionPolicy that created it.
	LabelPolicy = "retention.lethe.dev/policy"

	ReasonInvalidSchedule = "InvalidSchedule"
	ReasonScheduled       = "Scheduled"
	ReasonSuspended       = "Suspended"
	ReasonRunInProgress   = "RunInProgress"
	ReasonRunFailed       = "RunFailed"
	ReasonNotYetEffective = "NotYetEffective"

	// ConditionBacklogCleared says whether the last finished run left any
	// record past its retention period that it should have deleted or
	// anonymized (legal holds excluded).
	ConditionBacklogCleared = "BacklogCleared"
	// ReasonBacklogCleared: every rule's remainingAfterRun is zero.
	ReasonBacklogCleared = "BacklogCleared"
	// ReasonBacklogRemaining: some rule's remainingAfterRun is above zero;
	// the message names the rules and counts.
	ReasonBacklogRemaining = "BacklogRemaining"
	// ReasonBacklogNotMeasured: no finished run has been counted yet.
	ReasonBacklogNotMeasured = "NotMeasured"
	// ReasonBacklogDryRun: the last run was a dry run, which changes nothing.
	ReasonBacklogDryRun = "DryRun"

	// DefaultBacklogInterval is spec.backlogInterval's default.
	DefaultBacklogInterval = "10m"
)
