// Package identity checks the identities Lethe reads from requests, holds and
// Secrets (type → values). A type is a name of lowercase letters, digits and
// underscores that Datasets declare (user_id, email); values are personal
// data and never appear in an error.
package identity

import (
	"fmt"
	"slices"
	"unicode"
	"unicode/utf8"
)

// maxTypeLength bounds an identity type's name.
const maxTypeLength = 63

// IsType reports whether s is spelled as an identity type: a lowercase
// letter, then lowercase letters, digits and underscores.
func IsType(s string) bool {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

// Check checks one identity: the type is an identity type and the value is
// valid UTF-8 without NUL or other control characters (which no store
// compares sensibly, and which PostgreSQL refuses in text). The error never
// contains the value.
func Check(typ, value string) error {
	if !IsType(typ) || len(typ) > maxTypeLength {
		return fmt.Errorf("%q is not an identity type (lowercase letters, digits and underscores)", typ)
	}
	if !utf8.ValidString(value) {
		return fmt.Errorf("a %s value is not valid UTF-8", typ)
	}
	for _, c := range value {
		if unicode.IsControl(c) {
			return fmt.Errorf("a %s value contains a NUL or other control character", typ)
		}
	}
	return nil
}

// Types is the set of types with at least one value.
func Types(identities map[string][]string) map[string]bool {
	out := map[string]bool{}
	for t, vs := range identities {
		if len(vs) > 0 {
			out[t] = true
		}
	}
	return out
}

// Shared reports whether two identity sets have a value of the same type in
// common.
func Shared(a, b map[string][]string) bool {
	for t, vs := range b {
		for _, v := range vs {
			if slices.Contains(a[t], v) {
				return true
			}
		}
	}
	return false
}
