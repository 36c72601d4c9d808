package mask

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
)

// units splits a value into what strategies count and mask: runes for Text
// (each invalid UTF-8 byte becomes one U+FFFD, so encoding the units back is
// always valid UTF-8), bytes for Bytes.
func units(in string, t ColumnType) []rune {
	if t != Bytes {
		return []rune(in)
	}
	u := make([]rune, len(in))
	for i := 0; i < len(in); i++ {
		u[i] = rune(in[i])
	}
	return u
}

// encode is the inverse of units; Bytes units are all below 256 because the
// mask character of a Bytes column is ASCII.
func encode(u []rune, t ColumnType) string {
	if t != Bytes {
		return string(u)
	}
	b := make([]byte, len(u))
	for i, r := range u {
		b[i] = byte(r)
	}
	return string(b)
}

// maskAll replaces every unit with mask.
func maskAll(u []rune, mask rune) {
	for i := range u {
		u[i] = mask
	}
}

// maskMiddle keeps the first keepFirst and the last keepLast units and masks
// the others; when they would keep every unit, it masks every unit.
func maskMiddle(u []rune, keepFirst, keepLast int, mask rune) {
	n := len(u)
	if keepFirst >= n || keepLast >= n-keepFirst {
		maskAll(u, mask)
		return
	}
	maskAll(u[keepFirst:n-keepLast], mask)
}

// digest is the HMAC of a value: hex for Text, raw for Bytes, truncated to
// the column's limit; an empty value stays empty.
func (s Strategy) digest(in string, col Column) string {
	if in == "" {
		return ""
	}
	m := hmac.New(sha256.New, s.Key)
	_, _ = io.WriteString(m, in) // a hash.Hash never fails to write
	var sum [sha256.Size]byte
	mac := m.Sum(sum[:0])
	if col.Type == Bytes {
		return truncateBytes(string(mac), col.MaxLength)
	}
	return truncateBytes(hex.EncodeToString(mac), col.MaxLength) // hex is ASCII: bytes are runes
}

// truncateRunes cuts a valid UTF-8 string to at most limit runes; 0 means
// no limit.
func truncateRunes(s string, limit int) string {
	if limit <= 0 || len(s) <= limit {
		return s
	}
	n := 0
	for i := range s {
		if n == limit {
			return s[:i]
		}
		n++
	}
	return s
}

// truncateBytes cuts s to at most limit bytes; 0 means no limit.
func truncateBytes(s string, limit int) string {
	if limit <= 0 || len(s) <= limit {
		return s
	}
	return s[:limit]
}
