package ledger

import (
	"encoding/json"
	"slices"
	"time"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/digest"
)

// entry is one line of the erasure ledger: digests only.
type entry struct {
	Request    string   `json:"request"`
	Subject    string   `json:"subject"`
	Identities []string `json:"identities"`
	Receipt    string   `json:"receiptSHA256"`
	Completed  string   `json:"completed"`
}

// NewLine is the ledger line of a completed request: its name, the
// receipt's subject digest and SHA-256, its completion time, and a keyed
// digest (digest.Identity) of every identity erased — named and derived, so
// a restored backup can be checked for records keyed by a derived identity
// too — as sorted "type=digest" strings. No value appears in it.
func NewLine(key []byte, request string, r *retentionv1.Receipt, identities map[string][]string) (string, error) {
	e := entry{Request: request, Subject: r.SubjectDigest, Receipt: r.SHA256, Completed: r.CompletedAt.UTC().Format(time.RFC3339)}
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
