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
)
