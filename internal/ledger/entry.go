package ledger

import (
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
	line, err := json.Marshal(e)
	if err != nil {
		return "", err
	}
	return string(line), nil
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
