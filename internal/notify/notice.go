package notify

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"maps"
	"slices"
	"time"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

// Types of the messages.
const (
	// TypeErasureCompleted is the type of the notice Lethe sends.
	TypeErasureCompleted = "erasure.completed"
	// TypeErasureAcknowledged is the type of an asynchronous
	// acknowledgement a party returns.
	TypeErasureAcknowledged = "erasure.acknowledged"
)

// Notice is the JSON body of an erasure notice (docs/user-guide.md, "The erasure
// notice"), in the Standard Webhooks payload shape: type, timestamp, data.
type Notice struct {
	Type string `json:"type"`
	// Timestamp is when the erasure completed.
	Timestamp time.Time  `json:"timestamp"`
	Data      NoticeData `json:"data"`
}

// NoticeData says what was erased and whose.
type NoticeData struct {
	// RequestID is the DeletionRequest's UID: the same for every notice of
	// the request, to quote when answering about it.
	RequestID string `json:"requestId"`
	// Namespace and Name of the DeletionRequest.
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Reason of the erasure (spec.reason).
	Reason string `json:"reason"`
	// Deadline by which the request must be answered; the party is asked to
	// erase by then.
	Deadline time.Time `json:"deadline"`
	// Recipient is the name of the Recipient the notice is for.
	Recipient string `json:"recipient"`
	// Datasets of the request's plan that the party receives data from.
	Datasets []string `json:"datasets"`
	// Identities of the subject, only of the types the party received:
	// identity type → values, sorted.
	Identities map[string][]string `json:"identities"`
	// ReceiptSHA256 is the SHA-256 of the request's receipt, also in the
	// erasure ledger.
	ReceiptSHA256 string `json:"receiptSha256,omitempty"`
	// Acknowledge says how the party is expected to acknowledge: Response
	// (a 2xx answer) or Async (a signed acknowledgement served at the
	// acknowledgement URL).
	Acknowledge string `json:"acknowledge"`
}

// Acknowledgement is the JSON body of an asynchronous acknowledgement.
type Acknowledgement struct {
	Type      string    `json:"type"`
	Timestamp time.Time `json:"timestamp"`
	Data      struct {
		// NoticeID is the webhook-id of the acknowledged notice.
		NoticeID string `json:"noticeId"`
	} `json:"data"`
}

// NoticeID is the webhook-id of the notice of a request to a recipient:
// derived from the request's UID and the recipient's name, so that every
// attempt, by any manager, before or after a restart, carries the same id.
func NoticeID(requestUID, recipient string) string {
	sum := sha256.Sum256([]byte(requestUID + "/" + recipient))
	return "msg_" + hex.EncodeToString(sum[:16])
}

// Identities returns the identities of the types the recipient received
// (nil when the subject has none of them).
func Identities(r *retentionv1.Recipient, identities map[string][]string) map[string][]string {
	var out map[string][]string
	for _, t := range r.Spec.IdentityTypes {
		if vs := identities[string(t)]; len(vs) > 0 {
			if out == nil {
				out = map[string][]string{}
			}
			out[string(t)] = slices.Sorted(slices.Values(vs))
		}
	}
	return out
}

// Datasets returns the Datasets of the plan whose erasure concerns the
// recipient, sorted: those it names, and those with a planned collection
// holding one of its categories (the collection's own, or one of its
// fields'). datasets gives the Datasets of the plan by name.
func Datasets(r *retentionv1.Recipient, plan []retentionv1.PlannedCollection, datasets map[string]*retentionv1.Dataset) []string {
	named := map[string]bool{}
	for _, d := range r.Spec.Datasets {
		named[string(d)] = true
	}
	cats := map[retentionv1.Category]bool{}
	for _, c := range r.Spec.Categories {
		cats[c] = true
	}
	out := map[string]bool{}
	for _, p := range plan {
		if named[p.Dataset] {
			out[p.Dataset] = true
			continue
		}
		if ds := datasets[p.Dataset]; ds != nil && len(cats) > 0 && holdsCategory(ds, p.Collection, cats) {
			out[p.Dataset] = true
		}
	}
	return slices.Sorted(maps.Keys(out))
}

func holdsCategory(ds *retentionv1.Dataset, collection string, cats map[retentionv1.Category]bool) bool {
	for _, c := range ds.Spec.Collections {
		if string(c.Name) != collection {
			continue
		}
		for _, cat := range c.Categories {
			if cats[cat] {
				return true
			}
		}
		for _, f := range c.Fields {
			for _, cat := range f.Categories {
				if cats[cat] {
					return true
				}
			}
		}
	}
	return false
}

// Build returns the notice body for one recipient: canonical JSON (fixed
// field order, map keys sorted), so the same inputs give the same bytes.
func Build(dr *retentionv1.DeletionRequest, r *retentionv1.Recipient, datasets []string, identities map[string][]string) ([]byte, error) {
	n := Notice{Type: TypeErasureCompleted, Data: NoticeData{
		RequestID: string(dr.UID), Namespace: dr.Namespace, Name: dr.Name,
		Reason: string(dr.Spec.Reason), Recipient: r.Name,
		Datasets: datasets, Identities: identities,
		Acknowledge: string(mode(r)),
	}}
	if dr.Status.CompletionTime != nil {
		n.Timestamp = dr.Status.CompletionTime.UTC()
	}
	if dr.Status.DeadlineTime != nil {
		n.Data.Deadline = dr.Status.DeadlineTime.UTC()
	}
	if dr.Status.Receipt != nil {
		n.Data.ReceiptSHA256 = dr.Status.Receipt.SHA256
	}
	if n.Data.Datasets == nil {
		n.Data.Datasets = []string{}
	}
	return json.Marshal(n)
}

func mode(r *retentionv1.Recipient) retentionv1.AcknowledgementMode {
	if r.Spec.Acknowledgement.Mode == "" {
		return retentionv1.AcknowledgeResponse
	}
	return r.Spec.Acknowledgement.Mode
}

// Mode is how the recipient acknowledges (Response by default).
func Mode(r *retentionv1.Recipient) retentionv1.AcknowledgementMode { return mode(r) }
