package v1alpha1

// ErasureReplayPhase is the phase of an ErasureReplay.
// +kubebuilder:validation:Enum=Pending;Scanning;Erasing;Completed;Failed
type ErasureReplayPhase string

// ErasureReplay phases.
const (
	ReplayPending   ErasureReplayPhase = "Pending"
	ReplayScanning  ErasureReplayPhase = "Scanning"
	ReplayErasing   ErasureReplayPhase = "Erasing"
	ReplayCompleted ErasureReplayPhase = "Completed"
	ReplayFailed    ErasureReplayPhase = "Failed"
)

// ErasureReplay condition type, reasons, label and annotation.
const (
	// ConditionScanned: True when every Dataset in scope was scanned,
	// False (ReasonNotScannable) when one could not be: the replay never
	// calls a store it could not read clean.
	ConditionScanned = "Scanned"
	// ReasonNotScannable: a Dataset's store cannot be scanned (Redis, S3),
	// or a collection has no identity field or no key to page by.
	ReasonNotScannable = "NotScannable"
	// ReasonScanning: the replay is scanning; then ReasonErasing (shared
	// with DeletionRequests) while its re-erasures run.
	ReasonScanning = "Scanning"
	// ReasonReplayed: the replay completed (ReasonNothingToReplay: no
	// subject erased at or after the backup time was found).
	ReasonReplayed        = "Replayed"
	ReasonNothingToReplay = "NothingToReplay"
	// ReasonReErasureFailed: a re-erasure failed; the replay failed.
	ReasonReErasureFailed = "ReErasureFailed"
	// ReasonNotifiedAtOriginalErasure: a re-erasure's RecipientsNotified:
	// the Recipients were told of the original erasure, which this one
	// repeats on a restored store; no notice is sent again.
	ReasonNotifiedAtOriginalErasure = "NotifiedAtOriginalErasure"

	// LabelErasureReplay on a DeletionRequest (and its identity Secret)
	// names the ErasureReplay that created it.
	LabelErasureReplay = "retention.lethe.dev/erasure-replay"
)
