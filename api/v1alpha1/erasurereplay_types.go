package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ErasureReplaySpec names a DataStore restored from a backup and when the
// backup was taken. It is immutable: create a new replay to replay again.
type ErasureReplaySpec struct {
	// DataStore that was restored, in the same namespace. Its Datasets are
	// scanned (or those of datasets).
	// +required
	DataStore ObjectName `json:"dataStore"`

	// BackupTime is when the restored backup was taken (for a point-in-time
	// recovery, the recovery target). Every subject the erasure ledger
	// records as erased at or after this time is erased again; a subject
	// erased before it is not (the backup cannot hold its erased records: a
	// record matching it was written after that erasure, and is kept). Too
	// late a time leaves resurrected subjects in the store; too early a time
	// also erases again the subjects erased between it and the backup, and
	// with them the records of any who came back since. It must not be in
	// the future.
	// +required
	// +kubebuilder:validation:XValidation:rule="self >= timestamp('1970-01-01T00:00:00Z') && self < timestamp('2201-01-01T00:00:00Z')",message="must be a date from 1970-01-01 to 2200-12-31"
	BackupTime metav1.Time `json:"backupTime"`

	// Datasets of the DataStore to scan, by name (default: every Dataset of
	// the namespace on the DataStore). A Dataset on another DataStore is
	// refused.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +listType=set
	Datasets []ObjectName `json:"datasets,omitempty"`

	// DryRun scans and reports how many subjects and records would be
	// erased again, and erases nothing.
	// +optional
	DryRun bool `json:"dryRun,omitempty"`

	// AcceptUnsignedLedgerEntries replays ledger lines written before Lethe
	// signed them (no MAC) too. They cannot be told from lines anyone who
	// may write ConfigMaps in the namespace wrote, and they do not say which
	// Datasets their erasure reached (any is assumed): set it only for a
	// ledger you know only Lethe wrote. Lines whose MAC does not verify are
	// never replayed.
	// +optional
	AcceptUnsignedLedgerEntries bool `json:"acceptUnsignedLedgerEntries,omitempty"`

	// BatchSize is how many records one scan statement reads (default 1000;
	// at most the DataStore's spec.limits.maxBatchSize when that is set). The scan is paced
	// by the DataStore's spec.limits.maxBatchesPerSecond and paused by its
	// health limits, like a purge.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	BatchSize *int32 `json:"batchSize,omitempty"`
}

// ReplayCollection is what the scan found in one collection.
type ReplayCollection struct {
	// Dataset holding the collection.
	Dataset string `json:"dataset"`

	// Collection scanned.
	Collection string `json:"collection"`

	// Scanned is how many records the scan read.
	Scanned int64 `json:"scanned"`

	// Matched is how many of them hold an identity of a subject erased at
	// or after the backup time.
	Matched int64 `json:"matched"`

	// Erased is how many records the re-erasures deleted or anonymized in
	// the collection, summed from their receipts.
	// +optional
	Erased int64 `json:"erased,omitempty"`

	// Action the re-erasures took in the collection: Delete or Anonymize
	// (unset until one erased a record there).
	// +optional
	Action Action `json:"action,omitempty"`
}

// ReplayDataset is a Dataset the replay could not scan.
type ReplayDataset struct {
	// Dataset not scanned.
	Dataset string `json:"dataset"`

	// Reason it was not scanned (a store type that cannot be scanned, a
	// collection without identity fields, an error), without personal data.
	Reason string `json:"reason"`
}

// ReplayRequest is one re-erasure: a DeletionRequest the replay created for
// one subject found again.
type ReplayRequest struct {
	// Name of the DeletionRequest.
	Name string `json:"name"`

	// SubjectDigest is the keyed digest of the identities found for the
	// subject.
	// +optional
	SubjectDigest string `json:"subjectDigest,omitempty"`

	// Entries are the erasure-ledger entries (request names) the subject was
	// erased by.
	// +optional
	// +listType=atomic
	Entries []string `json:"entries,omitempty"`

	// Phase of the DeletionRequest as last seen.
	// +optional
	Phase DeletionRequestPhase `json:"phase,omitempty"`

	// Rows it deleted or anonymized (its receipt).
	// +optional
	Rows int64 `json:"rows,omitempty"`

	// ReceiptSHA256 is the SHA-256 of its receipt.
	// +optional
	ReceiptSHA256 string `json:"receiptSHA256,omitempty"`
}

// ReplayReceipt is the proof of a replay: what was erased again, per
// collection, and the receipts of the re-erasures.
type ReplayReceipt struct {
	// BackupTime replayed from.
	BackupTime metav1.Time `json:"backupTime"`

	// Subjects erased again.
	Subjects int32 `json:"subjects"`

	// Records erased again, in every collection.
	Records int64 `json:"records"`

	// Entries per collection, with the rows erased again (summed from the
	// re-erasures' receipts).
	// +optional
	// +listType=atomic
	Entries []ReceiptEntry `json:"entries,omitempty"`

	// Requests are the re-erasures, each with its receipt's SHA-256.
	// +optional
	// +listType=atomic
	Requests []ReplayRequest `json:"requests,omitempty"`

	// Verified says every re-erasure's verification pass found nothing
	// identifiable left; false for a dry run.
	Verified bool `json:"verified"`

	// CompletedAt is when the replay finished.
	// +optional
	CompletedAt *metav1.Time `json:"completedAt,omitempty"`

	// SHA256 of the canonical JSON of the receipt without this field.
	// +optional
	SHA256 string `json:"sha256,omitempty"`
}

// ErasureReplayStatus is the observed state of an ErasureReplay.
type ErasureReplayStatus struct {
	// ObservedGeneration is the generation the status was computed for.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Phase: Pending, Scanning, Erasing, Completed or Failed.
	// +optional
	Phase ErasureReplayPhase `json:"phase,omitempty"`

	// Conditions: Ready, Reconciling, Stalled, and Scanned (False when a
	// Dataset could not be scanned: the replay does not call it clean).
	// +optional
	// +listType=atomic
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// LedgerEntries is how many erasure-ledger entries of the namespace were
	// completed at or after the backup time: the subjects that may have come
	// back.
	// +optional
	LedgerEntries int32 `json:"ledgerEntries,omitempty"`

	// LedgerEntriesIgnored is how many ledger lines were not replayed: a
	// MAC that does not verify (written or changed by someone other than a
	// manager holding the digest key), no MAC without
	// spec.acceptUnsignedLedgerEntries, or a line that cannot be read.
	// +optional
	LedgerEntriesIgnored int32 `json:"ledgerEntriesIgnored,omitempty"`

	// LedgerEntriesBefore is how many erasure-ledger entries of the
	// namespace were completed before the backup time.
	// +optional
	LedgerEntriesBefore int32 `json:"ledgerEntriesBefore,omitempty"`

	// Collections scanned, with the records read, matched and erased again.
	// +optional
	// +listType=atomic
	Collections []ReplayCollection `json:"collections,omitempty"`

	// NotScanned lists the Datasets the replay could not scan.
	// +optional
	// +listType=atomic
	NotScanned []ReplayDataset `json:"notScanned,omitempty"`

	// SubjectsFound is how many subjects erased at or after the backup time
	// the restore brought back.
	// +optional
	SubjectsFound int32 `json:"subjectsFound,omitempty"`

	// SubjectsBeforeBackup is how many subjects erased before the backup
	// time have an identity in the store: written after that erasure (the
	// person came back), so kept.
	// +optional
	SubjectsBeforeBackup int32 `json:"subjectsBeforeBackup,omitempty"`

	// SubjectsErased is how many of the subjects found were erased again.
	// +optional
	SubjectsErased int32 `json:"subjectsErased,omitempty"`

	// RecordsErased is how many records the re-erasures deleted or
	// anonymized.
	// +optional
	RecordsErased int64 `json:"recordsErased,omitempty"`

	// Requests are the re-erasures, one DeletionRequest per subject.
	// +optional
	// +listType=atomic
	Requests []ReplayRequest `json:"requests,omitempty"`

	// StartTime is when the scan started.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`

	// CompletionTime is when the replay finished.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`

	// Receipt of the completed replay.
	// +optional
	Receipt *ReplayReceipt `json:"receipt,omitempty"`
}

// ErasureReplay replays the erasure ledger against a DataStore restored
// from a backup: it scans the identity fields of the DataStore's Datasets,
// digests them with the ledger's key, and erases again, through one
// DeletionRequest per subject (planned, held, verified, with a receipt),
// every subject the ledger records as erased at or after the backup time.
// It stores no identity: only the re-erasures' own Secrets hold the values
// found, until each re-erasure finishes.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=er;replay,categories=lethe
// +kubebuilder:printcolumn:name="DataStore",type=string,JSONPath=`.spec.dataStore`
// +kubebuilder:printcolumn:name="Backup",type=string,JSONPath=`.spec.backupTime`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Subjects",type=integer,JSONPath=`.status.subjectsErased`
// +kubebuilder:printcolumn:name="Records",type=integer,JSONPath=`.status.recordsErased`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ErasureReplay struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec names the restored DataStore and the backup time; immutable.
	// +required
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec is immutable: create a new ErasureReplay instead"
	Spec ErasureReplaySpec `json:"spec"`

	// Status reports the scan, the re-erasures and the receipt.
	// +optional
	Status ErasureReplayStatus `json:"status,omitempty"`
}

// ErasureReplayList is a list of ErasureReplays.
// +kubebuilder:object:root=true
type ErasureReplayList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ErasureReplay `json:"items"`
}

func init() {
	SchemeBuilder.Register(&ErasureReplay{}, &ErasureReplayList{})
}
