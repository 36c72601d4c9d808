package mask

import (
	"bytes"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

const (
	// MinKeyLength is the shortest HMAC key accepted, in bytes, not counting
	// trailing zero bytes: HMAC pads a short key with zeros, so "k" and "k\x00"
	// are the same key, and a key of only zero bytes is the empty key, which
	// would make HMAC a public, unkeyed hash.
	MinKeyLength = 16
	// MinHMACTextLength is the shortest Text column, in characters, that HMAC
	// writes into: 16 hex digits are 64 bits of the MAC, short enough for
	// varchar(16) yet long enough that distinct values practically never
	// collide and a digest never equals the value it replaced.
	MinHMACTextLength = 16
	// MinHMACBytesLength is the shortest Bytes column, in bytes, that HMAC
	// writes into (the same 64 bits).
	MinHMACBytesLength = 8
)

// minHMACLength is the shortest column HMAC writes into, in the column's unit.
func minHMACLength(t ColumnType) int {
	if t == Bytes {
		return MinHMACBytesLength
	}
	return MinHMACTextLength
}

// Validate reports whether the strategy can apply to col, with an error that
// wraps ErrInvalidStrategy and says what to use instead. It checks the
// strategy's own fields too: a known Kind, an HMAC key of at least
// MinKeyLength bytes, a Fixed replacement that is a valid value of the
// column's type, a printable mask character and non-negative counts.
// Apply calls Validate first; calling it earlier rejects a configuration
// before any data is read.
func (s Strategy) Validate(col Column) error {
	if col.MaxLength < 0 {
		return invalid("the column's length limit is negative")
	}
	if col.Type < Text || col.Type > Other {
		return invalid("unknown column type %s", col.Type)
	}
	switch s.Kind {
	case Null, Fixed, Redact, HMAC, PartialMask, Generalize:
	default:
		return invalid("unknown strategy %q: use Null, Fixed, Redact, HMAC, PartialMask or Generalize", string(s.Kind))
	}
	if !fits(s.Kind, col) {
		return notApplicable(s.Kind, col)
	}
	switch s.Kind {
	case Fixed:
		return s.validateFixed(col)
	case Redact:
		return s.validateMaskChar(col)
	case HMAC:
		return s.validateKey()
	case PartialMask:
		return s.validatePartialMask(col)
	case Generalize:
		return s.validateGranularity(col)
	}
	return nil
}

func (s Strategy) validateFixed(col Column) error {
	switch col.Type {
	case Text:
		if !utf8.ValidString(s.Replacement) {
			return invalid("the Fixed replacement for a Text column is not valid UTF-8")
		}
	case Timestamp, Date:
		if _, _, ok := parseTime(s.Replacement, col.Type); !ok {
			return invalid("the Fixed replacement for a %s column must be %s", col.Type, timeLayoutsHelp(col.Type))
		}
	case IP:
		if _, ok := parseIP(s.Replacement); !ok {
			return invalid("the Fixed replacement for an IP column must be an IP address such as 0.0.0.0 or ::")
		}
		return fitsLength("the Fixed replacement", s.Replacement, col)
	case Other:
		// Truncating a number or a JSON document would change or break it.
		return fitsLength("the Fixed replacement", s.Replacement, col)
	}
	return nil
}

func (s Strategy) validateKey() error {
	if n := len(bytes.TrimRight(s.Key, "\x00")); n < MinKeyLength {
		return invalid("HMAC needs a key of at least %d bytes not counting trailing zero bytes, got %d: put a longer random key in the Secret", MinKeyLength, n)
	}
	return nil
}

func (s Strategy) validatePartialMask(col Column) error {
	if s.KeepFirst < 0 || s.KeepLast < 0 {
		return invalid("PartialMask keepFirst and keepLast must not be negative")
	}
	return s.validateMaskChar(col)
}

func (s Strategy) validateGranularity(col Column) error {
	if col.Type == IP {
		return nil // addresses are always generalized to /24 or /48
	}
	switch s.Granularity {
	case "", "Day", "Month", "Year":
		return nil
	default:
		return invalid("unknown Generalize granularity %q: use Day, Month or Year", s.Granularity)
	}
}

// validateMaskChar accepts a printable character; a Bytes column also needs it
// to be a single byte (ASCII).
func (s Strategy) validateMaskChar(col Column) error {
	r := s.maskChar()
	if !utf8.ValidRune(r) || !unicode.IsPrint(r) {
		return invalid("the %s mask character must be a printable character", s.Kind)
	}
	if col.Type == Bytes && r >= utf8.RuneSelf {
		return invalid("the %s mask character for a Bytes column must be ASCII", s.Kind)
	}
	return nil
}

// fitsLength checks a value that must not be truncated against the column's
// length limit.
func fitsLength(what, v string, col Column) error {
	if col.MaxLength > 0 && utf8.RuneCountInString(v) > col.MaxLength {
		return invalid("%s is longer than the column's limit of %d characters", what, col.MaxLength)
	}
	return nil
}

// notApplicable says why a strategy cannot write into a column and what can.
func notApplicable(k Kind, col Column) error {
	msg := fmt.Sprintf("%s cannot apply to a %s column", k, col.Type)
	switch {
	case k == Null:
		msg = "Null cannot apply to a NOT NULL column"
	case k == HMAC && (col.Type == Text || col.Type == Bytes):
		msg = fmt.Sprintf("HMAC cannot apply to a %s column limited to %d: it needs at least %d to stay joinable",
			col.Type, col.MaxLength, minHMACLength(col.Type))
	}
	var alts []string
	for _, a := range Applicable(col) {
		if a != k {
			alts = append(alts, string(a))
		}
	}
	if len(alts) > 0 {
		msg += "; use " + joinOr(alts) + " instead"
	}
	return invalid("%s", msg)
}

// joinOr joins words as "a, b or c".
func joinOr(words []string) string {
	if len(words) == 1 {
		return words[0]
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}

// invalid is a configuration error.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidStrategy}, args...)...)
}

// badValue is an error about one value; callers never pass the value itself.
func badValue(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidValue}, args...)...)
}
