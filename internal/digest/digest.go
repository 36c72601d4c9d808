// Package digest computes the keyed digests Lethe shows instead of subject
// identifiers: HMAC-SHA256 under a key only the operator holds, so a digest
// can be matched against a known identity (to check a restored backup against
// the erasure ledger) but never reversed or brute-forced without the key.
package digest

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
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

// Seal encrypts a driver cursor for storage in status: a cursor holds the
// last key of a batch, which may itself be personal data (a table keyed by
// email). AES-256-GCM under a key derived from the digest key.
func Seal(key []byte, plaintext string) (string, error) {
	if plaintext == "" {
		return "", nil
	}
	aead, err := cursorAEAD(key)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	return "sealed:" + base64.RawURLEncoding.EncodeToString(aead.Seal(nonce, nonce, []byte(plaintext), []byte("lethe-cursor"))), nil
}

// Open decrypts what Seal produced.
func Open(key []byte, sealed string) (string, error) {
	if sealed == "" {
		return "", nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(sealed, "sealed:"))
	if err != nil {
		return "", fmt.Errorf("cursor is not sealed: %w", err)
	}
	aead, err := cursorAEAD(key)
	if err != nil {
		return "", err
	}
	if len(raw) < aead.NonceSize() {
		return "", errors.New("cursor is too short")
	}
	plain, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], []byte("lethe-cursor"))
	if err != nil {
		return "", fmt.Errorf("cursor cannot be opened with this manager's key: %w", err)
	}
	return string(plain), nil
}

func cursorAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) == 0 {
		return nil, errors.New("no digest key configured")
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte("lethe cursor encryption"))
	block, err := aes.NewCipher(m.Sum(nil))
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
