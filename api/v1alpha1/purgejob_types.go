package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Operation is one concrete operation on one collection.
// +kubebuilder:validation:XValidation:rule="self.action != 'Anonymize' || (has(self.fields) && size(self.fields) > 0)",message="action Anonymize needs fields with their strategies"
// +kubebuilder:validation:XValidation:rule="self.action == 'Anonymize' || !has(self.fields)",message="fields are only used by action Anonymize"
// +kubebuilder:validation:XValidation:rule="(has(self.byAge) && self.byAge) || (has(self.bySubject) && self.bySubject)",message="an operation selects records byAge, bySubject, or both"
type Operation struct {
	// Collection of the Dataset to work on.
	// +required
	Collection Identifier `json:"collection"`

	// Action is Delete or Anonymize.
	// +required
	Action Action `json:"action"`

	// ByAge selects records whose timestamp is strictly before the cutoff
	// (this operation's, or else the job's).
	// +optional
	ByAge bool `json:"byAge,omitempty"`

	// Cutoff overrides the job's cutoff for this operation, so one run can
	// apply several storage periods (a policy's rules). An absolute instant
	// from 1970 to 2200.
	// +optional
	// +kubebuilder:validation:XValidation:rule="self >= timestamp('1970-01-01T00:00:00Z') && self < timestamp('2201-01-01T00:00:00Z')",message="must be a date from 1970-01-01 to 2200-12-31"
	Cutoff *metav1.Time `json:"cutoff,omitempty"`

	// Rule names the RetentionPolicy rule this operation comes from, for the
	// audit trail.
	// +optional
	Rule Identifier `json:"rule,omitempty"`

	// BySubject selects records of the subjects in the job's subjectsSecretRef.
	// +optional
	BySubject bool `json:"bySubject,omitempty"`

	// Fields anonymized by action Anonymize.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +listType=map
	// +listMapKey=name
	Fields []FieldAnonymization `json:"fields,omitempty"`
}

// PurgeJobSpec is one execution against one Dataset, fixed at creation:
// retries and resumption after a crash touch exactly the same records.
// +kubebuilder:validation:XValidation:rule="has(self.cutoff) || self.operations.all(o, !has(o.byAge) || !o.byAge || has(o.cutoff))",message="operations byAge need a cutoff (on the job or the operation)"
// +kubebuilder:validation:XValidation:rule="!self.operations.exists(o, has(o.bySubject) && o.bySubject) || has(self.subjectsSecretRef)",message="operations bySubject need subjectsSecretRef"
type PurgeJobSpec struct {
	// DatasetRef names the Dataset, in the same namespace.
	// +required
	DatasetRef LocalObjectReference `json:"datasetRef"`

	// Mode is DryRun (count only) or Enforce.
	// +required
	Mode Mode `json:"mode"`

	// Cutoff is the absolute instant (UTC) before which records are selected
	// by age. Fixed when the job is created; from 1970 to 2200.
	// +optional
	// +kubebuilder:validation:XValidation:rule="self >= timestamp('1970-01-01T00:00:00Z') && self < timestamp('2201-01-01T00:00:00Z')",message="must be a date from 1970-01-01 to 2200-12-31"
	Cutoff *metav1.Time `json:"cutoff,omitempty"`

	// SubjectsSecretRef names a Secret, in the same namespace and usually owned
	// by the job, holding the subjects' identities (keys are identity types,
	// values newline-separated identifiers). Lethe creates it, labelled
	// retention.lethe.dev/secret: "true", and signs a digest of its content
	// with the job.
	// +optional
	SubjectsSecretRef *SecretReference `json:"subjectsSecretRef,omitempty"`

	// Operations, executed in order (children before parents).
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=128
	// +listType=atomic
	Operations []Operation `json:"operations"`

	// BatchSize, when set, is the fixed number of records one batch
	// touches at most. Unset (the default), batches are adaptive: their size
	// follows the measured batch duration, aiming at the DataStore's
	// limits.targetBatchDuration within its minBatchSize and maxBatchSize
	// (internal/executor/batchsize.go).
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100000
	BatchSize int32 `json:"batchSize,omitempty"`

	// Safety limits; checked by counting before anything is changed.
	// +optional
	Safety *SafetyLimits `json:"safety,omitempty"`

	// Suspend pauses the job: set it to true (kubectl patch purgejob NAME
	// --type merge -p '{"spec":{"suspend":true}}') and a running job stops
	// at its next batch boundary, never inside a batch; a job that has not
	// started does not start. Its phase shows Suspended until suspend is
	// false again, when it resumes from its last checkpoint. The one field
	// of the spec that may change after creation (the signature does not
	// cover it); suspending a RetentionPolicy does not suspend its running
	// PurgeJob.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
}

// OperationStatus is the progress of one operation.
type OperationStatus struct {
	// Collection worked on.
	Collection string `json:"collection"`

	// Phase: Pending, Running, Succeeded, Failed (the job stopped on it),
	// or Held.
	Phase PurgeJobPhase `json:"phase"`

	// Matched is how many records matched when counted before starting.
	Matched int64 `json:"matched"`

	// Deleted records.
	Deleted int64 `json:"deleted"`

	// Anonymized records.
	Anonymized int64 `json:"anonymized"`

	// Held is how many records legal holds kept out of this operation: those
	// it would have matched without the holds' subjects excluded, counted
	// once before starting (not set for an operation whose whole collection
	// is held; its phase says Held).
	// +optional
	Held int64 `json:"held,omitempty"`

	// Batches executed.
	Batches int64 `json:"batches"`

	// Cursor is the resumption point after the last committed batch, sealed
	// (encrypted) because it may hold a key that is personal data.
	// +optional
	Cursor string `json:"cursor,omitempty"`

	// PartitionsDropped counts partitions dropped whole.
	// +optional
	PartitionsDropped int32 `json:"partitionsDropped,omitempty"`
}

// PurgeJobStatus is the observed state of a PurgeJob.
type PurgeJobStatus struct {
	// ObservedGeneration is the generation the status was computed for.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Phase: Pending, Running, Suspended (spec.suspend), Succeeded, Failed
	// or Stalled.
	// +optional
	Phase PurgeJobPhase `json:"phase,omitempty"`

	// Conditions: Ready, Reconciling, Stalled (SafetyLimitExceeded,
	// InvalidOperation…), DataStoreAvailable, Complete, Failed, and
	// Throttled: True while a running job waits at a batch boundary for its
	// DataStore, or one that has not started waits for the DataStore's
	// window before counting (reasons OutsideWindow, with status.resumeAt;
	// ReplicationLag, ActiveSessions, LockWaiters, ThreadsRunning,
	// HealthUnknown; the message gives the measured value and the limit),
	// False (NotThrottled) once a batch runs.
	// A suspended job shows Ready False with reason Suspended.
	// CountsVerified is set when an Enforce job succeeds: True
	// (CountedByBatches) when no recount contributed to the totals, each
	// being the sum of the row counts the store returned inside the
	// committed batches (and every anonymization anonymized what it
	// matched); True (Verified) when a count of every delete's scope after
	// the last batch — made after a recount, or always with
	// spec.safety.verifyCounts Always — agrees with the counts in status
	// (what is left equals matched plus held minus deleted; for an
	// anonymization, anonymized equals matched); False (CountsNotExact) when
	// it does not, with the expected
	// and found numbers — the records were still deleted or anonymized as
	// specified, but the totals cannot be proven exact (someone else
	// inserted or deleted records in scope during the run, or a store
	// re-selected records it had already anonymized).
	// +optional
	// +listType=atomic
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// ResumeAt is when a job waiting outside its DataStore's windows
	// resumes: the start of the next window. Cleared once it runs.
	// +optional
	ResumeAt *metav1.Time `json:"resumeAt,omitempty"`

	// StartTime is when execution started.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`

	// CompletionTime is when execution finished.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`

	// Operations progress, in spec order.
	// +optional
	Operations []OperationStatus `json:"operations,omitempty"`

	// Matched is how many records all operations matched when counted.
	// +optional
	Matched int64 `json:"matched,omitempty"`

	// Deleted is how many records all operations deleted.
	// +optional
	Deleted int64 `json:"deleted,omitempty"`

	// Anonymized is how many records all operations anonymized.
	// +optional
	Anonymized int64 `json:"anonymized,omitempty"`

	// SealedKeys is how many primary keys of the subjects' records were
	// sealed before the first change (kept in the job-owned Secret
	// <job>-sealed, removed when the job succeeds), so a resumed erasure
	// still reaches records whose links to the subject it already changed.
	// +optional
	SealedKeys int64 `json:"sealedKeys,omitempty"`

	// Held is how many records legal holds kept out of all operations
	// (the sum of the operations' held counts).
	// +optional
	Held int64 `json:"held,omitempty"`

	// Recounted is how many of the deleted records were found by a recount
	// rather than counted by their batch: batches that committed but whose
	// checkpoint was never written (the manager was killed, lost its
	// connection to the API server or its leadership in between). They are
	// included in deleted; a Recounted event tells each recount.
	// +optional
	Recounted int64 `json:"recounted,omitempty"`
}

// PurgeJob is one execution of concrete operations against one Dataset,
// created by a RetentionPolicy run or a DeletionRequest. It is batched,
// resumable and checkpointed in status; kubectl get purgejobs is the audit
// trail of what ran.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=pj,categories=lethe
// +kubebuilder:printcolumn:name="Dataset",type=string,JSONPath=`.spec.datasetRef.name`
// +kubebuilder:printcolumn:name="Mode",type=string,JSONPath=`.spec.mode`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Matched",type=integer,JSONPath=`.status.matched`
// +kubebuilder:printcolumn:name="Deleted",type=integer,JSONPath=`.status.deleted`
// +kubebuilder:printcolumn:name="Anonymized",type=integer,JSONPath=`.status.anonymized`
// +kubebuilder:printcolumn:name="Held",type=integer,JSONPath=`.status.held`,priority=1
// +kubebuilder:printcolumn:name="Cutoff",type=date,JSONPath=`.spec.cutoff`,priority=1
// +kubebuilder:printcolumn:name="Suspended",type=boolean,JSONPath=`.spec.suspend`
// +kubebuilder:printcolumn:name="Resume At",type=date,JSONPath=`.status.resumeAt`,priority=1
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type PurgeJob struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is fixed at creation and immutable, but for suspend.
	// +required
	// +kubebuilder:validation:XValidation:rule="self.datasetRef == oldSelf.datasetRef && self.mode == oldSelf.mode && has(self.cutoff) == has(oldSelf.cutoff) && (!has(self.cutoff) || self.cutoff == oldSelf.cutoff) && has(self.subjectsSecretRef) == has(oldSelf.subjectsSecretRef) && (!has(self.subjectsSecretRef) || self.subjectsSecretRef == oldSelf.subjectsSecretRef) && self.operations == oldSelf.operations && has(self.batchSize) == has(oldSelf.batchSize) && (!has(self.batchSize) || self.batchSize == oldSelf.batchSize) && has(self.safety) == has(oldSelf.safety) && (!has(self.safety) || self.safety == oldSelf.safety)",message="spec is immutable but for suspend: a PurgeJob executes exactly what it was created with"
	Spec PurgeJobSpec `json:"spec"`

	// Status reports progress, checkpoints and totals.
	// +optional
	Status PurgeJobStatus `json:"status,omitempty"`
}

// PurgeJobList is a list of PurgeJobs.
// +kubebuilder:object:root=true
type PurgeJobList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []PurgeJob `json:"items"`
}

func init() {
	SchemeBuilder.Register(&PurgeJob{}, &PurgeJobList{})
}
