// Package mask holds Lethe's anonymization strategies as pure functions.
// Drivers read a field's current value, call Strategy.Apply with the column's
// type, and write the result back in the same batch transaction.
//
// The column's type decides the semantics of a strategy (characters for Text,
// bytes for Bytes, instants for Timestamp and Date, addresses for IP); the Go
// type of the value decides the Go type of the result, so a driver gets back
// what it can bind into the same column: a string for a string, a []byte for a
// []byte (MySQL drivers return text columns as []byte), a time.Time for a
// time.Time, a netip.Addr for a netip.Addr and a netip.Prefix for a
// netip.Prefix (pgx returns inet as netip.Prefix).
//
// Errors never contain the value being anonymized, nor the HMAC key.
package mask

import (
	"errors"
	"fmt"
	"strconv"
)

// Kind names a strategy; the values match the API's Strategy enum.
type Kind string

const (
	// Null writes NULL. It applies to nullable columns of every type.
	Null Kind = "Null"
	// Fixed writes Replacement, which must be a valid value of the column's
	// type; text is truncated to the column's length limit.
	Fixed Kind = "Fixed"
	// Redact replaces every character (every byte of a Bytes column) with
	// MaskChar and keeps the length.
	Redact Kind = "Redact"
	// HMAC writes hex(HMAC-SHA256(Key, value)) into Text columns and the raw
	// 32-byte MAC into Bytes columns, so equal values stay joinable without
	// being recoverable.
	HMAC Kind = "HMAC"
	// PartialMask keeps the first KeepFirst and last KeepLast characters and
	// masks the middle with MaskChar, as in 138****1234.
	PartialMask Kind = "PartialMask"
	// Generalize coarsens timestamps and dates to the start of their Day,
	// Month or Year, and IP addresses to their network (IPv4 /24, IPv6 /48).
	Generalize Kind = "Generalize"
)

// Strategy is a fully resolved anonymization strategy for one field.
//
// Its String and GoString methods never print Key, so a Strategy (or a struct
// holding one) can be formatted with %v, %+v or %#v safely.
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

// String returns the name of the column type, as used in error messages.
func (t ColumnType) String() string {
	switch t {
	case Text:
		return "Text"
	case Bytes:
		return "Bytes"
	case Timestamp:
		return "Timestamp"
	case Date:
		return "Date"
	case IP:
		return "IP"
	case Other:
		return "Other"
	}
	return "ColumnType(" + strconv.Itoa(int(t)) + ")"
}

// Column is what a strategy needs to know of the column it writes.
type Column struct {
	Type ColumnType
	// MaxLength is the column's length limit: characters (runes) for Text and
	// IP columns, bytes for Bytes columns; ignored for Timestamp and Date.
	// 0 means unlimited.
	MaxLength int
	Nullable  bool
}

// Errors returned by Validate and Apply wrap one of these, so callers can tell
// a configuration mistake (retrying cannot help, fix the Dataset) from a value
// that cannot be anonymized (a bad row).
var (
	// ErrInvalidStrategy: the strategy cannot apply to the column as
	// configured. Validate returns only errors wrapping it.
	ErrInvalidStrategy = errors.New("invalid anonymization strategy")
	// ErrInvalidValue: the value's Go type or content does not fit the
	// column's type (for example a string that is not an IP address in an IP
	// column). The message names the Go type, never the value.
	ErrInvalidValue = errors.New("value cannot be anonymized")
)

// Applicable lists, in order of preference, the strategies that can write
// into col. Null is listed only for nullable columns, HMAC only when the
// column is long enough to hold a joinable digest. A listed strategy may still
// need valid fields (a key, a replacement) to pass Validate.
func Applicable(col Column) []Kind {
	var kinds []Kind
	for _, k := range []Kind{Generalize, HMAC, PartialMask, Redact, Fixed, Null} {
		if fits(k, col) {
			kinds = append(kinds, k)
		}
	}
	return kinds
}

// fits reports whether a strategy of kind k can write into col at all,
// whatever its other fields.
func fits(k Kind, col Column) bool {
	textual := col.Type == Text || col.Type == Bytes
	switch k {
	case Null:
		return col.Nullable
	case Fixed:
		return true
	case Redact, PartialMask:
		return textual
	case HMAC:
		return textual && (col.MaxLength == 0 || col.MaxLength >= minHMACLength(col.Type))
	case Generalize:
		return col.Type == Timestamp || col.Type == Date || col.Type == IP
	}
	return false
}

// String describes the strategy without its key.
func (s Strategy) String() string {
	return fmt.Sprintf("{Kind:%s Replacement:%q KeepFirst:%d KeepLast:%d MaskChar:%q Granularity:%q Key:[%d bytes redacted]}",
		s.Kind, s.Replacement, s.KeepFirst, s.KeepLast, s.maskChar(), s.Granularity, len(s.Key))
}

// GoString describes the strategy for %#v without its key.
func (s Strategy) GoString() string {
	return "mask.Strategy" + s.String()
}

// maskChar is MaskChar with its default applied.
func (s Strategy) maskChar() rune {
	if s.MaskChar == 0 {
		return '*'
	}
	return s.MaskChar
}
