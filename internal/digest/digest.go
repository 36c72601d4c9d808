// Package digest computes the keyed digests Lethe shows instead of subject
// identifiers: HMAC-SHA256 under a key only the operator holds, so a digest
// can be matched against a known identity (to check a restored backup against
// the erasure ledger) but never reversed or brute-forced without the key.
package digest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
)

// Identity digests one identifier as "type:value".
func Identity(key []byte, typ, value string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(typ))
	m.Write([]byte{0})
	m.Write([]byte(value))
	return "hmac-sha256:" + hex.EncodeToString(m.Sum(nil))
}

// Subject digests a whole subject: the identities in canonical order (by
// type, then value), so the same person gets the same digest however the
// request lists them.
func Subject(key []byte, identities map[string][]string) string {
	var parts []string
	for typ, values := range identities {
		for _, v := range values {
			parts = append(parts, typ+"\x00"+v)
		}
	}
	slices.Sort(parts)
	m := hmac.New(sha256.New, key)
	m.Write([]byte(strings.Join(parts, "\x01")))
	return "hmac-sha256:" + hex.EncodeToString(m.Sum(nil))
}

// Short is the first 12 hex characters of a digest, for names and messages.
func Short(d string) string {
	d = strings.TrimPrefix(d, "hmac-sha256:")
	if len(d) > 12 {
		return d[:12]
	}
	return d
}
