package v1alpha1

// LegalHoldPhase is the phase of a LegalHold.
// +kubebuilder:validation:Enum=Active;Expired;Released
type LegalHoldPhase string

// LegalHold phases.
const (
	HoldActive   LegalHoldPhase = "Active"
	HoldExpired  LegalHoldPhase = "Expired"
	HoldReleased LegalHoldPhase = "Released"
)

// LegalHold condition type and reasons. A hold that has ended is still Ready
// (its status is current); the Active condition says whether it holds.
const (
	ConditionActive = "Active"
	ReasonActive    = string(HoldActive)
	ReasonExpired   = string(HoldExpired)
	ReasonReleased  = string(HoldReleased)
	// ReasonNothingDerived: the hold's identities derived no further ones.
	ReasonNothingDerived = "NothingDerived"
)
