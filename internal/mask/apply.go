package mask

import (
	"strings"
	"time"
)

// Apply anonymizes v, the current value of a field in col, and returns the
// value to write back. v is nil, a string, a []byte, a time.Time, a
// netip.Addr or a netip.Prefix; the result has the same Go type (see the
// package documentation), except that Null returns nil and Fixed turns nil
// into the replacement: a string for Text, IP and Other columns, a []byte for
// Bytes and a time.Time for Timestamp and Date. Every other strategy keeps nil
// as nil.
//
// Apply validates the strategy first (see Validate). It never panics, and for
// a Text column it always returns valid UTF-8 within col.MaxLength characters,
// even when v is not valid UTF-8 (an invalid byte counts as one character and
// is written as U+FFFD where a strategy keeps it).
//
// Per strategy:
//   - Null returns nil.
//   - Fixed returns Replacement, truncated to col.MaxLength (characters for
//     Text, bytes for Bytes); Timestamp, Date, IP and Other replacements are
//     never truncated, Validate rejects those that do not fit. A replacement
//     time written over a time held in text takes that text's layout.
//   - Redact returns as many MaskChar as v has characters (bytes for Bytes).
//   - HMAC returns the lowercase hex HMAC-SHA256 of v's bytes for Text and the
//     raw 32-byte MAC for Bytes, truncated to col.MaxLength. A truncated
//     digest is still a deterministic function of the key and the value, so
//     equal values stay equal and joinable across columns of any length that
//     is at least as long; only the collision probability grows, which is why
//     Validate asks for MinHMACTextLength characters (MinHMACBytesLength
//     bytes). An empty value stays empty: it holds no personal data, and
//     hashing it would invent one.
//   - PartialMask keeps the first KeepFirst and last KeepLast characters
//     (bytes for Bytes) and replaces the others with MaskChar, keeping the
//     length. When KeepFirst+KeepLast is not less than the length nothing is
//     in the middle, and keeping everything would anonymize nothing, so every
//     character is masked. A value longer than col.MaxLength is masked first
//     and truncated afterwards, so truncation never moves a middle character
//     into a kept position.
//   - Generalize truncates a time to the start of its Day (default), Month or
//     Year in the time's own location; an IPv4 address to its /24 network
//     address and an IPv6 address to its /48 one (an IPv4-mapped IPv6 address
//     such as ::ffff:203.0.113.77 is an IPv4 address: ::ffff:203.0.113.0). A
//     zone (fe80::1%eth0) is dropped; a prefix length (inet 10.1.2.3/16) is
//     kept. Strings and []byte holding a time (RFC 3339, or the SQL layout
//     2006-01-02 15:04:05 with or without an offset, or a date for Date
//     columns) or an address are parsed and written back in the same layout.
func (s Strategy) Apply(v any, col Column) (any, error) {
	if err := s.Validate(col); err != nil {
		return nil, err
	}
	switch {
	case s.Kind == Null:
		return nil, nil
	case s.Kind == Fixed:
		return s.fixed(v, col)
	case v == nil:
		return nil, nil
	case s.Kind == Generalize && col.Type == IP:
		return generalizeIP(v, col)
	case s.Kind == Generalize:
		return s.generalizeTime(v, col)
	}
	return s.textual(v, col)
}

// textual applies Redact, HMAC or PartialMask to a Text or Bytes value.
func (s Strategy) textual(v any, col Column) (any, error) {
	switch v.(type) {
	case string, []byte:
		return sameType(v, s.transform(asString(v), col), nil)
	}
	return nil, unsupported(v, col)
}

// transform applies Redact, HMAC or PartialMask to a value's bytes.
func (s Strategy) transform(in string, col Column) string {
	if s.Kind == HMAC {
		return s.digest(in, col)
	}
	u := units(in, col.Type)
	if s.Kind == Redact {
		maskAll(u, s.maskChar())
	} else {
		maskMiddle(u, s.KeepFirst, s.KeepLast, s.maskChar())
	}
	if col.MaxLength > 0 && len(u) > col.MaxLength {
		u = u[:col.MaxLength]
	}
	return encode(u, col.Type)
}

// fixed applies Fixed.
func (s Strategy) fixed(v any, col Column) (any, error) {
	switch col.Type {
	case Timestamp, Date:
		return s.fixedTime(v, col)
	case IP:
		return s.fixedIP(v, col)
	}
	out := s.Replacement
	switch col.Type {
	case Text:
		out = truncateRunes(out, col.MaxLength)
	case Bytes:
		out = truncateBytes(out, col.MaxLength)
	}
	if _, isBytes := v.([]byte); isBytes || (v == nil && col.Type == Bytes) {
		return []byte(out), nil
	}
	return out, nil
}

// fixedTime applies Fixed to a Timestamp or Date column.
func (s Strategy) fixedTime(v any, col Column) (any, error) {
	t, _, _ := parseTime(s.Replacement, col.Type) // checked by Validate
	switch v.(type) {
	case nil, time.Time:
		return t, nil
	case string, []byte:
		return sameType(v, fixedTimeText(t, s.Replacement, asString(v), col), nil)
	}
	return nil, unsupported(v, col)
}

// fixedTimeText writes the replacement t in the layout of the text it
// replaces, so a store that returned SQL text (MySQL without parseTime) gets
// back a layout it accepts; text in no known layout gets the replacement as
// written.
func fixedTimeText(t time.Time, replacement, in string, col Column) string {
	if _, layout, ok := parseTime(strings.TrimSpace(in), col.Type); ok {
		return t.Format(layout)
	}
	return replacement
}

// asString is the text of a string or []byte value.
func asString(v any) string {
	if b, ok := v.([]byte); ok {
		return string(b)
	}
	s, _ := v.(string)
	return s
}

// sameType returns out with the Go type of in: a []byte for a []byte, a
// string otherwise; or the error.
func sameType(in any, out string, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	if _, ok := in.([]byte); ok {
		return []byte(out), nil
	}
	return out, nil
}

// unsupported is the error for a value of the wrong Go type; it names the
// type, never the value.
func unsupported(v any, col Column) error {
	return badValue("a %T value cannot be anonymized in a %s column", v, col.Type)
}
