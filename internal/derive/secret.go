package derive

import (
	"encoding/json"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/holds"
	"github.com/lethe-dev/lethe/internal/outcome"
)

// AnnotationDerivedFrom on a Secret of derived identities records, per
// derived type, from which types and collection it was derived (JSON, no
// values).
const AnnotationDerivedFrom = "retention.lethe.dev/derived-from"

// MergeStored adds the identities kept in a Secret of derived identities
// (one key per type, values newline-separated) to identities, and returns
// how each was derived (AnnotationDerivedFrom). identities is not modified.
func MergeStored(identities map[string][]string, s *corev1.Secret) (map[string][]string, map[string]string, error) {
	how := map[string]string{}
	if a := s.Annotations[AnnotationDerivedFrom]; a != "" {
		if err := json.Unmarshal([]byte(a), &how); err != nil {
			return nil, nil, outcome.Stall(retentionv1.ReasonDerivationFailed, fmt.Sprintf("Secret %s: annotation %s is not valid JSON", s.Name, AnnotationDerivedFrom))
		}
	}
	out := map[string][]string{}
	for t, vs := range identities {
		out[t] = slices.Clone(vs)
	}
	for t, v := range s.Data {
		vs := append(out[t], holds.SplitValues(string(v))...)
		slices.Sort(vs)
		out[t] = slices.Compact(vs)
	}
	return out, how, nil
}
