// Package mask holds Lethe's anonymization strategies as pure functions.
// Drivers read a field's current value, call Strategy.Apply with the column's
// type, and write the result back in the same batch transaction.
package mask

// Kind names a strategy; the values match the API's Strategy enum.
type Kind string

const (
	Null        Kind = "Null"
	Fixed       Kind = "Fixed"
	Redact      Kind = "Redact"
	HMAC        Kind = "HMAC"
	PartialMask Kind = "PartialMask"
	Generalize  Kind = "Generalize"
)

// Strategy is a fully resolved anonymization strategy for one field.
type Strategy struct {
	Kind        Kind
	Replacement string // Fixed
	KeepFirst   int    // PartialMask
	KeepLast    int    // PartialMask
	MaskChar    rune   // Redact and PartialMask; 0 means '*'
	Granularity string // Generalize of timestamps: Day (default), Month, Year
	Key         []byte // HMAC key, from a Secret; never empty for HMAC
}

// ColumnType is the family of a column's type, which decides what a strategy
// may write into it.
type ColumnType int

const (
	// Text: char, varchar, text (values are string).
	Text ColumnType = iota
	// Bytes: bytea, blob, binary (values are []byte).
	Bytes
	// Timestamp: timestamptz, timestamp, datetime (values are time.Time).
	Timestamp
	// Date: date (values are time.Time at midnight).
	Date
	// IP: inet, or text holding an IP address (values are netip.Addr or string).
	IP
	// Other: anything else (numbers, json…); only Null and Fixed apply.
	Other
)

// Column is what a strategy needs to know of the column it writes.
type Column struct {
	Type      ColumnType
	MaxLength int // in characters; 0 means unlimited
	Nullable  bool
}
