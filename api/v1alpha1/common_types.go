package v1alpha1

// This file holds the types shared by several kinds: references, identities,
// durations, safety limits and anonymization strategies, with their admission
// validation. Identifier patterns are deliberately strict: they are the first of
// two defences against injection (the second is that drivers always quote
// identifiers and bind values).

// Identifier is the name of a schema, table or column: a letter or underscore,
// then letters, digits or underscores, at most 63 characters. Quotes,
// semicolons, whitespace, dots and comment markers are never accepted.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=63
// +kubebuilder:validation:Pattern=`^[A-Za-z_][A-Za-z0-9_]*$`
type Identifier string

// IdentityType names a kind of identifier of a data subject, such as user_id,
// email, phone or device_id: lowercase letters, digits and underscores.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=63
// +kubebuilder:validation:Pattern=`^[a-z][a-z0-9_]*$`
type IdentityType string

// Category names a data category such as contact, device, location or
// browsing: lowercase letters, digits, underscores and hyphens.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=63
// +kubebuilder:validation:Pattern=`^[a-z][a-z0-9_-]*$`
type Category string

// ObjectName is the name of another Lethe object in the same namespace.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=253
// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
type ObjectName string

// RetentionDuration is an age limit: a positive whole number followed by one
// unit, h (hours), d (days), w (weeks), mo (calendar months) or y (calendar
// years), for example 36h, 90d, 6w, 18mo or 3y. Months and years are calendar
// arithmetic on the run's instant in UTC. Minutes are deliberately not a unit,
// so "6m" can never be misread as six months.
// +kubebuilder:validation:MinLength=2
// +kubebuilder:validation:MaxLength=8
// At most 100 years: 99999h, 36525d, 5218w, 1200mo or 100y, so that no
// cutoff or deadline computed from it leaves the API's range of dates.
// +kubebuilder:validation:XValidation:rule="self.matches('^[1-9][0-9]{0,4}(h|d|w|mo|y)$')",message="must be a positive duration with one unit: h, d, w, mo or y (for example 36h, 90d, 6w, 18mo, 3y)"
// +kubebuilder:validation:XValidation:rule="!self.matches('^[0-9]{1,5}(h|d|w|mo|y)$') || (self.endsWith('mo') ? int(self.substring(0, size(self) - 2)) <= 1200 : self.endsWith('y') ? int(self.substring(0, size(self) - 1)) <= 100 : self.endsWith('w') ? int(self.substring(0, size(self) - 1)) <= 5218 : self.endsWith('d') ? int(self.substring(0, size(self) - 1)) <= 36525 : true)",message="must be at most 100 years: at most 100y, 1200mo, 5218w, 36525d or 99999h"
type RetentionDuration string

// WaitDuration is like RetentionDuration (at most 100 years) but may be zero
// ("0h") to mean no wait.
// +kubebuilder:validation:MinLength=2
// +kubebuilder:validation:MaxLength=8
// +kubebuilder:validation:XValidation:rule="self.matches('^(0|[1-9][0-9]{0,4})(h|d|w|mo|y)$')",message="must be a non-negative duration with one unit: h, d, w, mo or y (for example 0h, 48h, 30d)"
// +kubebuilder:validation:XValidation:rule="!self.matches('^[0-9]{1,5}(h|d|w|mo|y)$') || (self.endsWith('mo') ? int(self.substring(0, size(self) - 2)) <= 1200 : self.endsWith('y') ? int(self.substring(0, size(self) - 1)) <= 100 : self.endsWith('w') ? int(self.substring(0, size(self) - 1)) <= 5218 : self.endsWith('d') ? int(self.substring(0, size(self) - 1)) <= 36525 : true)",message="must be at most 100 years: at most 100y, 1200mo, 5218w, 36525d or 99999h"
type WaitDuration string

// Timeout is a short Go-style duration with a single unit: ms, s or m, for
// example 500ms, 5s or 2m; at most 24 hours.
// +kubebuilder:validation:MinLength=2
// +kubebuilder:validation:MaxLength=10
// +kubebuilder:validation:XValidation:rule="self.matches('^[1-9][0-9]{0,6}(ms|s|m)$')",message="must be a positive duration with one unit: ms, s or m (for example 500ms, 5s, 2m)"
// +kubebuilder:validation:XValidation:rule="!self.matches('^[0-9]{1,7}(ms|s|m)$') || (self.endsWith('ms') ? int(self.substring(0, size(self) - 2)) <= 86400000 : self.endsWith('s') ? int(self.substring(0, size(self) - 1)) <= 86400 : int(self.substring(0, size(self) - 1)) <= 1440)",message="must be at most 24 hours: at most 1440m, 86400s or 86400000ms"
type Timeout string

// LocalObjectReference names an object of a known kind in the same namespace.
type LocalObjectReference struct {
	// Name of the object, in the same namespace as the referrer.
	// +required
	Name ObjectName `json:"name"`
}

// LabelSecretConsent marks a Secret that Lethe may use: Lethe reads a Secret
// that a DataStore, Dataset, DeletionRequest or LegalHold references only if
// it carries this label with the value "true". Anyone who can write those
// kinds can name any Secret of the namespace; the label is the consent of
// whoever owns the Secret. A reference to an unmarked Secret leaves the
// referrer Stalled with reason SecretNotMarked, and nothing of it is read.
const LabelSecretConsent = "retention.lethe.dev/secret" //nolint:gosec // a label name, not a credential

// LabelRequireApproval on a Namespace ("true") makes every DeletionRequest in
// it require approval: the ValidatingAdmissionPolicy of
// config/admission/deletionrequest_approval.yaml refuses a request without
// requireApproval there.
const LabelRequireApproval = "retention.lethe.dev/require-approval"

// SecretReference names a Secret in the same namespace as the referrer.
// Cross-namespace references are not allowed: Lethe only reads Secrets it is
// pointed at, in the namespace of the object that points at them, and only
// those labelled retention.lethe.dev/secret: "true".
// +kubebuilder:validation:XValidation:rule="!has(self.__namespace__)",message="Secret references are same-namespace only: remove namespace"
type SecretReference struct {
	// Name of the Secret, in the same namespace as the referrer. The Secret
	// must carry the label retention.lethe.dev/secret: "true" (Lethe uses no
	// other Secret).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$')",message="must be a valid Secret name"
	Name string `json:"name"`

	// Namespace must not be set. The field exists only so that a manifest
	// written with a cross-namespace reference is rejected with a clear message
	// instead of having the field silently dropped.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace,omitempty"`
}

// SecretKeySelector names one key of a Secret in the same namespace. Lethe
// reads only Secrets labelled retention.lethe.dev/secret: "true".
// +kubebuilder:validation:XValidation:rule="!has(self.__namespace__)",message="Secret references are same-namespace only: remove namespace"
type SecretKeySelector struct {
	// Name of the Secret, in the same namespace as the referrer. The Secret
	// must carry the label retention.lethe.dev/secret: "true" (Lethe uses no
	// other Secret).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$')",message="must be a valid Secret name"
	Name string `json:"name"`

	// Key inside the Secret's data.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[-._a-zA-Z0-9]+$')",message="must be a valid Secret key"
	Key string `json:"key"`

	// Namespace must not be set; see SecretReference.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace,omitempty"`
}

// SubjectIdentity is one identifier of a data subject, such as
// {type: email, value: ada@example.com}. Prefer a Secret for real requests:
// values in a spec are stored in etcd and visible to anyone who can read the
// object. Lethe never copies values into status, events, logs or metrics.
type SubjectIdentity struct {
	// Type of the identifier; it must match an identity type declared by the
	// Datasets in scope (for example user_id, email or phone).
	// +required
	Type IdentityType `json:"type"`

	// Value of the identifier. It must not contain NUL or other control
	// characters (tabs and line breaks included).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule="!self.matches('[[:cntrl:]]')",message="must not contain NUL or other control characters (tabs and line breaks included)"
	Value string `json:"value"`
}

// Action is what happens to a matching record.
// +kubebuilder:validation:Enum=Delete;Anonymize
type Action string

const (
	// ActionDelete removes the record (row, key or object).
	ActionDelete Action = "Delete"
	// ActionAnonymize rewrites the record's personal fields with their
	// anonymization strategies and keeps the rest.
	ActionAnonymize Action = "Anonymize"
)

// Mode says whether a run changes data.
// +kubebuilder:validation:Enum=DryRun;Enforce
type Mode string

const (
	// ModeDryRun counts what would be deleted or anonymized and changes nothing.
	ModeDryRun Mode = "DryRun"
	// ModeEnforce deletes and anonymizes.
	ModeEnforce Mode = "Enforce"
)

// SafetyLimits stop a run before it changes anything when it would touch more
// than expected. A stopped run shows Stalled with reason SafetyLimitExceeded.
type SafetyLimits struct {
	// MaxRows is the largest number of records one run may delete or anonymize
	// across all its collections (at most 10^12). Unset means no absolute limit.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000000000
	MaxRows *int64 `json:"maxRows,omitempty"`

	// MaxPercent is the largest share, in percent of a collection's records,
	// that one run may delete or anonymize in that collection. Unset means no
	// relative limit.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	MaxPercent *int32 `json:"maxPercent,omitempty"`

	// VerifyCounts says when a run proves its totals by counting, after its
	// last batch, what is left of each delete's scope (the CountsVerified
	// condition). AfterRecount (the default): only when part of a total had
	// to be recovered by a recount (the manager was killed, lost the API
	// server, or a status write failed after a batch committed); otherwise
	// every total is the sum of the row counts the store returned inside each
	// batch's committed transaction, exact by construction. Always: after
	// every run, which also reports records that someone else added to or
	// removed from the scope while it ran, at the cost of one more count over
	// the purged range (on PostgreSQL it visits every deleted row's dead
	// index entry: measured at about a quarter of the purge's own time).
	// +optional
	VerifyCounts CountVerification `json:"verifyCounts,omitempty"`
}

// CountVerification says when a run counts what is left in scope to prove
// its totals.
// +kubebuilder:validation:Enum=AfterRecount;Always
type CountVerification string

const (
	// VerifyCountsAfterRecount counts what is left only when a recount
	// recovered part of a total.
	VerifyCountsAfterRecount CountVerification = "AfterRecount"
	// VerifyCountsAlways counts what is left after every run.
	VerifyCountsAlways CountVerification = "Always"
)

// Strategy is an anonymization strategy for one field.
// +kubebuilder:validation:Enum=Null;Fixed;Redact;HMAC;PartialMask;Generalize
type Strategy string

const (
	// StrategyNull sets the field to NULL (or removes it).
	StrategyNull Strategy = "Null"
	// StrategyFixed replaces the field with a fixed replacement text.
	StrategyFixed Strategy = "Fixed"
	// StrategyRedact keeps the length and replaces every character.
	StrategyRedact Strategy = "Redact"
	// StrategyHMAC replaces the value with HMAC-SHA256 keyed from a Secret, so
	// equal values stay joinable without being recoverable.
	StrategyHMAC Strategy = "HMAC"
	// StrategyPartialMask keeps the first and last characters and masks the
	// middle, as in 138****1234.
	StrategyPartialMask Strategy = "PartialMask"
	// StrategyGeneralize coarsens timestamps (to day, month or year) and IP
	// addresses (IPv4 to /24, IPv6 to /48).
	StrategyGeneralize Strategy = "Generalize"
)

// Granularity says how far Generalize coarsens a timestamp.
// +kubebuilder:validation:Enum=Day;Month;Year
type Granularity string

const (
	GranularityDay   Granularity = "Day"
	GranularityMonth Granularity = "Month"
	GranularityYear  Granularity = "Year"
)

// Anonymization says how one field is anonymized.
// +kubebuilder:validation:XValidation:rule="self.strategy != 'Fixed' || has(self.replacement)",message="strategy Fixed needs replacement"
// +kubebuilder:validation:XValidation:rule="self.strategy == 'Fixed' || !has(self.replacement)",message="replacement is only used by strategy Fixed"
// +kubebuilder:validation:XValidation:rule="self.strategy == 'PartialMask' || (!has(self.keepFirst) && !has(self.keepLast))",message="keepFirst and keepLast are only used by strategy PartialMask"
// +kubebuilder:validation:XValidation:rule="self.strategy == 'Generalize' || !has(self.granularity)",message="granularity is only used by strategy Generalize"
type Anonymization struct {
	// Strategy is one of Null, Fixed, Redact, HMAC, PartialMask or Generalize.
	// +required
	Strategy Strategy `json:"strategy"`

	// Replacement is the text written by strategy Fixed. It is truncated to the
	// column's length limit.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Replacement *string `json:"replacement,omitempty"`

	// KeepFirst is how many leading characters PartialMask keeps (default 0).
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=64
	KeepFirst *int32 `json:"keepFirst,omitempty"`

	// KeepLast is how many trailing characters PartialMask keeps (default 0).
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=64
	KeepLast *int32 `json:"keepLast,omitempty"`

	// Granularity is how far Generalize coarsens a timestamp (default Day).
	// IP addresses are always generalized to /24 (IPv4) or /48 (IPv6).
	// +optional
	Granularity Granularity `json:"granularity,omitempty"`
}

// FieldAnonymization names a field and how to anonymize it.
type FieldAnonymization struct {
	// Name of the column, hash field or attribute.
	// +required
	Name Identifier `json:"name"`

	// Anonymization strategy for this field.
	Anonymization `json:",inline"`
}
