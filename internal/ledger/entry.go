package ledger

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"time"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/digest"
)

// Entry is one line of the erasure ledger: digests only.
type Entry struct {
	Request    string   `json:"request"`
	Subject    string   `json:"subject"`
	Identities []string `json:"identities"`
	Receipt    string   `json:"receiptSHA256"`
	Completed  string   `json:"completed"`
	// Datasets are the Datasets the erasure reached (its receipt's), sorted:
	// a replay after a restore (internal/replay) erases the subject again in
	// these only. nil in lines written before the field existed (any
	// Dataset); empty when the erasure had nothing in scope.
	Datasets []string `json:"datasets"`
	// MAC is an HMAC-SHA256, under a key derived from the manager's digest
	// key, of the line without it: a line written or changed by anyone else
	// (the ledger is ConfigMaps a namespace editor may write) does not
	// verify. Empty in lines written before it existed.
	MAC string `json:"mac,omitempty"`
}

// NewLine is the ledger line of a completed request: its name, the
// receipt's subject digest and SHA-256, its completion time, and a keyed
// digest (digest.Identity) of every identity erased — named and derived, so
// a restored backup can be checked for records keyed by a derived identity
// too — as sorted "type=digest" strings, and the Datasets its receipt
// covers. No value appears in it.
func NewLine(key []byte, request string, r *retentionv1.Receipt, identities map[string][]string) (string, error) {
	e := Entry{Request: request, Subject: r.SubjectDigest, Receipt: r.SHA256, Completed: r.CompletedAt.UTC().Format(time.RFC3339), Datasets: []string{}}
	for _, re := range r.Entries {
		if !slices.Contains(e.Datasets, re.Dataset) {
			e.Datasets = append(e.Datasets, re.Dataset)
		}
	}
	slices.Sort(e.Datasets)
	for typ, vs := range identities {
		for _, v := range vs {
			e.Identities = append(e.Identities, typ+"="+digest.Identity(key, typ, v))
		}
	}
	slices.Sort(e.Identities)
	mac, err := e.mac(key)
	if err != nil {
		return "", err
	}
	e.MAC = mac
	line, err := json.Marshal(e)
	if err != nil {
		return "", err
	}
	return string(line), nil
}

// mac is the MAC of e without its MAC field.
func (e Entry) mac(key []byte) (string, error) {
	e.MAC = ""
	b, err := json.Marshal(e)
	if err != nil {
		return "", err
	}
	k := hmac.New(sha256.New, key)
	k.Write([]byte("lethe erasure ledger line"))
	m := hmac.New(sha256.New, k.Sum(nil))
	m.Write(b)
	return hex.EncodeToString(m.Sum(nil)), nil
}

// Signed reports whether the line carries a MAC (lines written before
// ledger lines were signed do not).
func (e Entry) Signed() bool { return e.MAC != "" }

// Verify reports whether the line's MAC is the one this manager's key
// gives: the line was written by a manager holding the key and not changed
// since.
func (e Entry) Verify(key []byte) bool {
	want, err := e.mac(key)
	return err == nil && e.MAC != "" && hmac.Equal([]byte(want), []byte(e.MAC))
}

// ParseLine reads a ledger line.
func ParseLine(line string) (Entry, error) {
	var e Entry
	err := json.Unmarshal([]byte(line), &e)
	return e, err
}

// HasIdentity reports whether the line lists the identity whose keyed
// digest (digest.Identity) is d, of type typ.
func (e Entry) HasIdentity(typ, d string) bool {
	return slices.Contains(e.Identities, typ+"="+d)
}
