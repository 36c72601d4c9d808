package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// CronSchedule is a five-field cron expression (minute hour day-of-month month
// day-of-week, with *, lists, ranges and steps; month and weekday names
// allowed) or one of @yearly, @annually, @monthly, @weekly, @daily,
// @midnight, @hourly.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=128
// +kubebuilder:validation:XValidation:rule="self.matches('^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|(([*]|([0-5]?[0-9])(-([0-5]?[0-9]))?)(/[1-9][0-9]?)?)(,(([*]|([0-5]?[0-9])(-([0-5]?[0-9]))?)(/[1-9][0-9]?)?))* +(([*]|([01]?[0-9]|2[0-3])(-([01]?[0-9]|2[0-3]))?)(/[1-9][0-9]?)?)(,(([*]|([01]?[0-9]|2[0-3])(-([01]?[0-9]|2[0-3]))?)(/[1-9][0-9]?)?))* +(([*]|([1-9]|[12][0-9]|3[01])(-([1-9]|[12][0-9]|3[01]))?)(/[1-9][0-9]?)?)(,(([*]|([1-9]|[12][0-9]|3[01])(-([1-9]|[12][0-9]|3[01]))?)(/[1-9][0-9]?)?))* +(([*]|([1-9]|1[0-2]|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC)(-([1-9]|1[0-2]|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC))?)(/[1-9][0-9]?)?)(,(([*]|([1-9]|1[0-2]|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC)(-([1-9]|1[0-2]|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC))?)(/[1-9][0-9]?)?))* +(([*]|([0-7]|SUN|MON|TUE|WED|THU|FRI|SAT)(-([0-7]|SUN|MON|TUE|WED|THU|FRI|SAT))?)(/[1-9][0-9]?)?)(,(([*]|([0-7]|SUN|MON|TUE|WED|THU|FRI|SAT)(-([0-7]|SUN|MON|TUE|WED|THU|FRI|SAT))?)(/[1-9][0-9]?)?))*)$')",message="must be a five-field cron expression (minute hour day-of-month month day-of-week, for example '0 3 * * *') or @daily, @weekly, @monthly, @yearly, @hourly"
type CronSchedule string

// ConcurrencyPolicy says what happens when a run is due while the previous
// one still runs.
// +kubebuilder:validation:Enum=Forbid;Replace
type ConcurrencyPolicy string

const (
	// ConcurrencyForbid skips the new run while the previous one is active.
	ConcurrencyForbid ConcurrencyPolicy = "Forbid"
	// ConcurrencyReplace stops the active run (at a batch boundary) and starts
	// the new one.
	ConcurrencyReplace ConcurrencyPolicy = "Replace"
)

// RetentionRule selects collections of the policy's Dataset, by name or by
// data category, and says what happens to their records older than a limit.
// +kubebuilder:validation:XValidation:rule="(has(self.collections) && size(self.collections) > 0) || (has(self.categories) && size(self.categories) > 0)",message="a rule selects collections or categories (at least one)"
// +kubebuilder:validation:XValidation:rule="self.action == 'Anonymize' || !has(self.fields)",message="fields are only used by action Anonymize"
type RetentionRule struct {
	// Name of the rule, unique in the policy; used in status and PurgeJobs.
	// +required
	Name Identifier `json:"name"`

	// Collections selected by name.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +listType=set
	Collections []Identifier `json:"collections,omitempty"`

	// Categories select every collection holding a field (or being) of one
	// of these data categories.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +listType=set
	Categories []Category `json:"categories,omitempty"`

	// OlderThan is the storage period: records whose timestamp is older than
	// this at the run's fixed cutoff are deleted or anonymized.
	// +required
	OlderThan RetentionDuration `json:"olderThan"`

	// Action is Delete or Anonymize.
	// +required
	Action Action `json:"action"`

	// Fields override the Dataset's anonymization for this rule (Anonymize
	// only). When omitted, every field of the selected collections with an
	// anonymize strategy (or, for category rules, every such field of those
	// categories) is anonymized.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +listType=map
	// +listMapKey=name
	Fields []FieldAnonymization `json:"fields,omitempty"`
}

// RetentionPolicySpec says how long the personal data of one Dataset may be
// kept, and when Lethe enforces it.
// +kubebuilder:validation:XValidation:rule="self.rules.all(r, self.rules.exists_one(o, o.name == r.name))",message="rule names must be unique"
type RetentionPolicySpec struct {
	// DatasetRef names the Dataset, in the same namespace, the policy governs.
	// +required
	DatasetRef LocalObjectReference `json:"datasetRef"`

	// Mode is DryRun (count only) or Enforce (delete and anonymize). Required,
	// so that enforcing is always a deliberate choice.
	// +required
	Mode Mode `json:"mode"`

	// Schedule is a cron expression in timeZone, for example "0 3 * * *".
	// +required
	Schedule CronSchedule `json:"schedule"`

	// TimeZone of the schedule, an IANA name such as Asia/Shanghai (default UTC).
	// +optional
	// +kubebuilder:default=UTC
	TimeZone TimeZone `json:"timeZone,omitempty"`

	// StartingDeadlineSeconds: a run missed by more than this is skipped, not
	// caught up. At most one missed run is ever caught up. At most 31536000
	// (one year).
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=31536000
	StartingDeadlineSeconds *int64 `json:"startingDeadlineSeconds,omitempty"`

	// ConcurrencyPolicy is Forbid (default) or Replace.
	// +optional
	// +kubebuilder:default=Forbid
	ConcurrencyPolicy ConcurrencyPolicy `json:"concurrencyPolicy,omitempty"`

	// Suspend stops scheduling new runs; a running PurgeJob finishes (to
	// pause it, set spec.suspend on that PurgeJob).
	// +optional
	Suspend bool `json:"suspend,omitempty"`

	// EffectiveFrom delays enforcement until this instant, for example the
	// announced end of a service; from 1970 to 2200.
	// +optional
	// +kubebuilder:validation:XValidation:rule="self >= timestamp('1970-01-01T00:00:00Z') && self < timestamp('2201-01-01T00:00:00Z')",message="must be a date from 1970-01-01 to 2200-12-31"
	EffectiveFrom *metav1.Time `json:"effectiveFrom,omitempty"`

	// Rules of the policy.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	// +listType=atomic
	Rules []RetentionRule `json:"rules"`

	// Safety limits per run.
	// +optional
	Safety *SafetyLimits `json:"safety,omitempty"`

	// BatchSize, when set, is the fixed number of records one batch of
	// this policy's PurgeJobs touches at most. Unset (the default), batches
	// are adaptive: their size follows the measured batch duration, aiming
	// at the DataStore's limits.targetBatchDuration within its minBatchSize
	// and maxBatchSize. (Policies created before adaptive batches had 1000
	// filled in by the API server; remove it to make them adaptive.)
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100000
	BatchSize int32 `json:"batchSize,omitempty"`

	// SuccessfulRunsHistoryLimit is how many finished PurgeJobs are kept (default 3).
	// +optional
	// +kubebuilder:default=3
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	SuccessfulRunsHistoryLimit *int32 `json:"successfulRunsHistoryLimit,omitempty"`

	// FailedRunsHistoryLimit is how many failed PurgeJobs are kept (default 1).
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	FailedRunsHistoryLimit *int32 `json:"failedRunsHistoryLimit,omitempty"`

	// BacklogInterval is how often Lethe counts, per rule, the records past
	// their retention period now (status.backlog and the metric
	// lethe_records_past_retention), besides the count after each run: a
	// whole number of s, m or h, at least 1m and at most 168h (default 10m).
	// "0s" (or 0m, 0h) counts only after runs, for tables whose count is too
	// expensive to repeat (each count is one SELECT count(*) per collection
	// over the rule's timestamp range; see docs/operations.md).
	// +optional
	// +kubebuilder:default="10m"
	BacklogInterval BacklogInterval `json:"backlogInterval,omitempty"`
}

// BacklogInterval is a whole number of seconds, minutes or hours such as
// 10m, 1h or 90s: zero, or from 1m to 168h.
// +kubebuilder:validation:MinLength=2
// +kubebuilder:validation:MaxLength=8
// +kubebuilder:validation:XValidation:rule="self.matches('^(0|[1-9][0-9]{0,5})(s|m|h)$')",message="must be a whole number with one unit, s, m or h (for example 10m, 1h), or 0s to count only after runs"
// +kubebuilder:validation:XValidation:rule="!self.matches('^[0-9]{1,6}(s|m|h)$') || self.matches('^0(s|m|h)$') || (self.endsWith('s') ? int(self.substring(0, size(self) - 1)) >= 60 && int(self.substring(0, size(self) - 1)) <= 604800 : self.endsWith('m') ? int(self.substring(0, size(self) - 1)) <= 10080 : int(self.substring(0, size(self) - 1)) <= 168)",message="must be at least 1m and at most 168h (or 0s to count only after runs)"
type BacklogInterval string

// BacklogAccuracy says how a backlog count was obtained.
// +kubebuilder:validation:Enum=Exact;Estimated
type BacklogAccuracy string

const (
	// BacklogExact: counted in the store with the rule's cutoff at the
	// measurement (Delete rules).
	BacklogExact BacklogAccuracy = "Exact"
	// BacklogEstimated: derived from exact counts and an assumption. For an
	// Anonymize rule a store cannot tell an anonymized record from one not
	// yet anonymized, so the backlog is the records dated between the cutoff
	// of the policy's last successful Enforce run (anonymizedBefore: that run
	// anonymized what was older) and the cutoff now.
	BacklogEstimated BacklogAccuracy = "Estimated"
)

// CollectionBacklog is the backlog of one rule in one of its collections.
type CollectionBacklog struct {
	// Collection of the Dataset.
	Collection Identifier `json:"collection"`

	// Records past their retention period at the rule's cutoff, not kept by
	// legal holds.
	Records int64 `json:"records"`

	// Held is how many records past their retention period legal holds keep
	// (never part of the backlog).
	// +optional
	Held int64 `json:"held,omitempty"`

	// RemainingAfterRun is how many records the run named by
	// status.backlog.afterRun should have deleted or anonymized and that were
	// still there after it (legal holds excluded).
	// +optional
	RemainingAfterRun *int64 `json:"remainingAfterRun,omitempty"`
}

// RuleBacklog is the backlog of one rule: its records past their retention
// period now.
type RuleBacklog struct {
	// Rule names the policy's rule.
	Rule Identifier `json:"rule"`

	// Records past their retention period at MeasuredTime (older than
	// Cutoff), not kept by legal holds, summed over the rule's collections.
	Records int64 `json:"records"`

	// Held is how many records past their retention period legal holds keep
	// (reported apart: holds win over retention, so they are no backlog).
	// +optional
	Held int64 `json:"held,omitempty"`

	// Accuracy is Exact (Delete rules: counted in the store) or Estimated
	// (Anonymize rules: see anonymizedBefore).
	Accuracy BacklogAccuracy `json:"accuracy"`

	// MeasuredTime is when the records were counted.
	MeasuredTime metav1.Time `json:"measuredTime"`

	// Cutoff is MeasuredTime minus the rule's olderThan: records dated
	// before it are past their retention period.
	Cutoff metav1.Time `json:"cutoff"`

	// AnonymizedBefore (Anonymize rules) is the cutoff of the policy's last
	// successful Enforce run of this rule: that run anonymized the records
	// dated before it, so only younger records past retention are counted.
	// +optional
	AnonymizedBefore *metav1.Time `json:"anonymizedBefore,omitempty"`

	// RemainingAfterRun is how many records the run named by
	// status.backlog.afterRun should have deleted or anonymized and that
	// were still there after it, legal holds excluded: for a Delete rule
	// counted in the store at that run's own cutoff (records that aged past
	// retention while it ran are not its failure), for an Anonymize rule
	// taken from the run's counts (matched minus anonymized). Above zero,
	// condition BacklogCleared is False.
	// +optional
	RemainingAfterRun *int64 `json:"remainingAfterRun,omitempty"`

	// Collections break the counts down by collection.
	// +optional
	// +listType=map
	// +listMapKey=collection
	// +kubebuilder:validation:MaxItems=64
	Collections []CollectionBacklog `json:"collections,omitempty"`
}

// Backlog is what an auditor asks for: per rule, how many records are past
// their retention period now. It is counted after each run and every
// spec.backlogInterval, with each rule's cutoff computed at measurement
// time; counts only, never a record's content.
type Backlog struct {
	// Records is the sum of the rules' records past their retention period
	// (legal holds excluded) at MeasuredTime.
	Records int64 `json:"records"`

	// Held is the sum of the rules' records past retention that legal holds
	// keep.
	// +optional
	Held int64 `json:"held,omitempty"`

	// MeasuredTime is when the records were last counted.
	MeasuredTime metav1.Time `json:"measuredTime"`

	// AfterRun names the finished run (PurgeJob) after which the rules'
	// remainingAfterRun was counted.
	// +optional
	AfterRun string `json:"afterRun,omitempty"`

	// Rules hold the backlog of each rule.
	// +optional
	// +listType=map
	// +listMapKey=rule
	// +kubebuilder:validation:MaxItems=32
	Rules []RuleBacklog `json:"rules,omitempty"`
}

// RunSummary summarizes one run of a policy.
type RunSummary struct {
	// PurgeJob that executed the run.
	PurgeJob string `json:"purgeJob"`

	// ScheduledTime is the instant the run was scheduled for; each rule's
	// cutoff is this instant minus the rule's olderThan.
	// +optional
	ScheduledTime *metav1.Time `json:"scheduledTime,omitempty"`

	// Result is the run's phase: Pending, Running, Succeeded, Failed or Stalled.
	// +optional
	Result PurgeJobPhase `json:"result,omitempty"`

	// RowsMatched is how many records matched the rules.
	RowsMatched int64 `json:"rowsMatched"`

	// RowsDeleted is how many records were deleted.
	RowsDeleted int64 `json:"rowsDeleted"`

	// RowsAnonymized is how many records were anonymized.
	RowsAnonymized int64 `json:"rowsAnonymized"`

	// RowsHeld is how many records that the rules selected legal holds kept
	// (the run's PurgeJob reports them per operation).
	// +optional
	RowsHeld int64 `json:"rowsHeld,omitempty"`

	// Duration of the run, for example 1m30s.
	// +optional
	Duration string `json:"duration,omitempty"`
}

// RetentionPolicyStatus is the observed state of a RetentionPolicy.
type RetentionPolicyStatus struct {
	// ObservedGeneration is the generation the status was computed for.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready, Reconciling, Stalled (InvalidSchedule,
	// DatasetNotFound, SafetyLimitExceeded…) and BacklogCleared (True when
	// every rule's backlog was zero after the last run, False with reason
	// BacklogRemaining naming the rules and counts, Unknown before a run
	// was counted or for DryRun runs).
	// +optional
	// +listType=atomic
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// LastScheduleTime is when the last run was scheduled.
	// +optional
	LastScheduleTime *metav1.Time `json:"lastScheduleTime,omitempty"`

	// NextScheduleTime is when the next run is due, in UTC.
	// +optional
	NextScheduleTime *metav1.Time `json:"nextScheduleTime,omitempty"`

	// LastSuccessfulTime is when the last run succeeded.
	// +optional
	LastSuccessfulTime *metav1.Time `json:"lastSuccessfulTime,omitempty"`

	// Active lists the PurgeJobs of this policy still running.
	// +optional
	// +listType=set
	Active []string `json:"active,omitempty"`

	// LastRunNowToken is the value of the run-now annotation last acted on;
	// setting the annotation to a new value starts one more run.
	// +optional
	LastRunNowToken string `json:"lastRunNowToken,omitempty"`

	// LastRun summarizes the most recent run.
	// +optional
	LastRun *RunSummary `json:"lastRun,omitempty"`

	// Backlog counts, per rule, the records past their retention period now
	// (after each run and every spec.backlogInterval).
	// +optional
	Backlog *Backlog `json:"backlog,omitempty"`
}

// RetentionPolicy says how long each kind of personal data in a Dataset may be
// kept, and deletes or anonymizes it on a schedule through PurgeJobs.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=rp;rpol,categories=lethe
// +kubebuilder:printcolumn:name="Dataset",type=string,JSONPath=`.spec.datasetRef.name`
// +kubebuilder:printcolumn:name="Schedule",type=string,JSONPath=`.spec.schedule`
// +kubebuilder:printcolumn:name="Mode",type=string,JSONPath=`.spec.mode`
// +kubebuilder:printcolumn:name="Last Run",type=date,JSONPath=`.status.lastRun.scheduledTime`
// +kubebuilder:printcolumn:name="Rows",type=integer,JSONPath=`.status.lastRun.rowsMatched`
// +kubebuilder:printcolumn:name="Backlog",type=integer,JSONPath=`.status.backlog.records`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Next Run",type=string,JSONPath=`.status.nextScheduleTime`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type RetentionPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the desired retention.
	// +required
	Spec RetentionPolicySpec `json:"spec"`

	// Status reports the schedule and the last run.
	// +optional
	Status RetentionPolicyStatus `json:"status,omitempty"`
}

// RetentionPolicyList is a list of RetentionPolicies.
// +kubebuilder:object:root=true
type RetentionPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []RetentionPolicy `json:"items"`
}

func init() {
	SchemeBuilder.Register(&RetentionPolicy{}, &RetentionPolicyList{})
}
