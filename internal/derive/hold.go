package derive

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/digest"
	"github.com/lethe-dev/lethe/internal/holds"
	"github.com/lethe-dev/lethe/internal/identity"
	"github.com/lethe-dev/lethe/internal/outcome"
)

// maxHoldBytes bounds the values of a hold's Secret in all (a Secret holds
// at most 1 MiB).
const maxHoldBytes = 512 << 10

// Annotations on a hold's Secret: annotationInputs is a keyed digest of what
// the derivation read (the named identities, the Datasets' generations);
// annotationAt is when it ran. The stores are read again when either is
// outdated. annotationTruncated lists the types cut at the bounds.
const (
	annotationInputs    = "retention.lethe.dev/derived-inputs"
	annotationAt        = "retention.lethe.dev/derived-at"
	annotationTruncated = "retention.lethe.dev/derived-truncated"
)

// Hold keeps a LegalHold's derived identities current in the hold's own
// Secret (holds.DerivedSecretName), which holds.Subjects reads, so
// retention runs and erasures exclude records keyed by a derived identity
// too.
type Hold struct {
	Stores Stores
	// Client lists Datasets and creates, updates and deletes the Secret.
	Client client.Client
	// Reader reads the Secret (uncached).
	Reader client.Reader
	// Key keys the digest of the derivation's inputs.
	Key []byte
	// Interval is how often the stores are read again.
	Interval time.Duration
}

// HoldDerivation is what deriving did for a hold, without values.
type HoldDerivation struct {
	// Linked is false when no Dataset in scope links the held types to
	// others: nothing is derived, and no Secret is kept.
	Linked    bool
	How       map[string]string // derived type → "<from types> via <collection>"
	Counts    map[string]int    // derived type → values kept
	Truncated []string          // types cut at the bounds
	// Secret is where the values are kept.
	Secret string
	// Next is when the stores are read again.
	Next time.Duration
}

// Refresh keeps the hold's derived identities current in its Secret and
// says what it holds. It reads the stores when the named identities or the
// Datasets changed, or Interval passed; otherwise the Secret stands. A
// Secret of that name the hold does not own is an outcome.Stall
// (DerivationFailed).
func (d *Hold) Refresh(ctx context.Context, h *retentionv1.LegalHold, named map[string][]string, now time.Time) (HoldDerivation, error) {
	datasets, err := d.datasets(ctx, h)
	if err != nil {
		return HoldDerivation{}, err
	}
	key := types.NamespacedName{Namespace: h.Namespace, Name: holds.DerivedSecretName(h)}
	var s corev1.Secret
	exists := true
	switch err := d.Reader.Get(ctx, key, &s); {
	case apierrors.IsNotFound(err):
		exists = false
	case err != nil:
		return HoldDerivation{}, err
	case !holds.OwnedBy(&s, h):
		return HoldDerivation{}, outcome.Stall(retentionv1.ReasonDerivationFailed, fmt.Sprintf("Secret %s exists but is not owned by this hold; Lethe keeps the hold's derived identities there", key.Name))
	}

	if len(Derivable(datasets, identity.Types(named))) == 0 {
		if exists {
			if err := d.Client.Delete(ctx, &s); client.IgnoreNotFound(err) != nil {
				return HoldDerivation{}, err
			}
		}
		return HoldDerivation{Secret: key.Name}, nil
	}

	in := inputs(d.Key, named, datasets)
	if exists && s.Annotations[annotationInputs] == in {
		if at, err := time.Parse(time.RFC3339, s.Annotations[annotationAt]); err == nil && now.Sub(at) < d.Interval && !at.After(now) {
			r, err := stored(&s)
			if err != nil {
				return HoldDerivation{}, err
			}
			r.Next = at.Add(d.Interval).Sub(now)
			return r, nil
		}
	}

	out, how, truncated, err := d.Stores.Derive(ctx, datasets, named, HoldBounds)
	if err != nil {
		return HoldDerivation{}, err
	}
	data, cut := secretData(out, how, maxHoldBytes)
	for _, t := range cut {
		if !slices.Contains(truncated, t) {
			truncated = append(truncated, t)
		}
	}
	slices.Sort(truncated)
	b, err := json.Marshal(how)
	if err != nil {
		return HoldDerivation{}, err
	}
	annotations := map[string]string{
		AnnotationDerivedFrom: string(b),
		annotationInputs:      in,
		annotationAt:          now.UTC().Format(time.RFC3339),
	}
	if len(truncated) > 0 {
		annotations[annotationTruncated] = strings.Join(truncated, ",")
	}
	if exists {
		// Only data and annotations change: the owner reference set at
		// creation stays as it is.
		s.Data, s.Annotations = data, annotations
		if err := d.Client.Update(ctx, &s); err != nil {
			return HoldDerivation{}, fmt.Errorf("keeping derived identities in Secret %s: %w", key.Name, err)
		}
	} else {
		s = corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: h.Namespace, Name: key.Name, Labels: map[string]string{holds.LabelLegalHold: h.Name, retentionv1.LabelSecretConsent: "true"}, Annotations: annotations},
			Type:       corev1.SecretTypeOpaque,
			Data:       data,
		}
		// Owned from creation: the owner reference is part of the create
		// call, never patched in later.
		if err := controllerutil.SetControllerReference(h, &s, d.Client.Scheme()); err != nil {
			return HoldDerivation{}, err
		}
		if err := d.Client.Create(ctx, &s); err != nil {
			return HoldDerivation{}, fmt.Errorf("keeping derived identities in Secret %s: %w", key.Name, err)
		}
	}
	r, err := stored(&s)
	if err != nil {
		return HoldDerivation{}, err
	}
	r.Next = d.Interval
	return r, nil
}

// Forget removes a hold's derived identities once it has ended: they are
// personal data, and an ended hold keeps nothing. A Secret of that name the
// hold does not own is left alone.
func (d *Hold) Forget(ctx context.Context, h *retentionv1.LegalHold) error {
	var s corev1.Secret
	switch err := d.Reader.Get(ctx, types.NamespacedName{Namespace: h.Namespace, Name: holds.DerivedSecretName(h)}, &s); {
	case apierrors.IsNotFound(err):
	case err != nil:
		return err
	case holds.OwnedBy(&s, h):
		if err := d.Client.Delete(ctx, &s); client.IgnoreNotFound(err) != nil {
			return err
		}
	}
	return nil
}

// datasets lists the Datasets a hold's derivation reads: those it names, or
// every Dataset of its namespace, sorted, without those being deleted. (Its
// collection and category scope limits what it holds, not where identities
// are linked: a users table outside it still links a held user_id to an
// email.)
func (d *Hold) datasets(ctx context.Context, h *retentionv1.LegalHold) ([]retentionv1.Dataset, error) {
	var list retentionv1.DatasetList
	if err := d.Client.List(ctx, &list, client.InNamespace(h.Namespace)); err != nil {
		return nil, err
	}
	out := list.Items
	if len(h.Spec.Datasets) > 0 {
		out = slices.DeleteFunc(out, func(d retentionv1.Dataset) bool {
			return !slices.Contains(h.Spec.Datasets, retentionv1.ObjectName(d.Name))
		})
	}
	out = slices.DeleteFunc(out, func(d retentionv1.Dataset) bool { return !d.DeletionTimestamp.IsZero() })
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Total is the number of derived values kept.
func (r HoldDerivation) Total() int {
	total := 0
	for _, n := range r.Counts {
		total += n
	}
	return total
}

// Message describes a hold's derivation by types, counts and the
// collections read, never by values, with the IdentitiesDerived reason:
// IdentitiesDerived, DerivationLimit when a type was cut, or NothingDerived.
func (r HoldDerivation) Message() (reason, msg string) {
	var parts []string
	for _, t := range slices.Sorted(maps.Keys(r.Counts)) {
		n := r.Counts[t]
		if n == 0 {
			continue
		}
		unit := "values"
		if n == 1 {
			unit = "value"
		}
		part := fmt.Sprintf("%s (%d %s)", t, n, unit)
		if how := r.How[t]; how != "" {
			part += " from " + how
		}
		parts = append(parts, part)
	}
	if len(parts) == 0 {
		return retentionv1.ReasonNothingDerived, "The stores hold no further identities of the held subjects"
	}
	msg = fmt.Sprintf("Holding derived identities too: %s; the values are kept in Secret %s", strings.Join(parts, "; "), r.Secret)
	if len(r.Truncated) > 0 {
		return retentionv1.ReasonDerivationLimit, msg + fmt.Sprintf(". More values of %s were found than one Secret keeps (%d per type, %d KiB in all): those beyond are not held by derivation; name them in the hold",
			strings.Join(r.Truncated, ", "), MaxHoldValues, maxHoldBytes>>10)
	}
	return retentionv1.ReasonIdentitiesDerived, msg
}

// stored reads what a hold's Secret says was derived (types, counts, how;
// values are only counted).
func stored(s *corev1.Secret) (HoldDerivation, error) {
	r := HoldDerivation{Linked: true, How: map[string]string{}, Counts: map[string]int{}, Secret: s.Name}
	if a := s.Annotations[AnnotationDerivedFrom]; a != "" {
		if err := json.Unmarshal([]byte(a), &r.How); err != nil {
			return r, outcome.Stall(retentionv1.ReasonDerivationFailed, fmt.Sprintf("Secret %s: annotation %s is not valid JSON", s.Name, AnnotationDerivedFrom))
		}
	}
	for t, v := range s.Data {
		if n := len(holds.SplitValues(string(v))); n > 0 {
			r.Counts[t] = n
		}
	}
	if a := s.Annotations[annotationTruncated]; a != "" {
		r.Truncated = strings.Split(a, ",")
	}
	return r, nil
}

// secretData is the Secret data of derived identities: per derived type,
// its values newline-separated, in all at most maxBytes. Types that do not
// fit whole keep the values that fit, and are returned as cut.
func secretData(identities map[string][]string, how map[string]string, maxBytes int) (map[string][]byte, []string) {
	data := map[string][]byte{}
	var cut []string
	size := 0
	for _, t := range slices.Sorted(maps.Keys(how)) {
		var kept []string
		n := 0
		for _, v := range identities[t] {
			add := len(v) + 1
			if size+n+add > maxBytes {
				cut = append(cut, t)
				break
			}
			kept = append(kept, v)
			n += add
		}
		size += n
		if len(kept) > 0 {
			data[t] = []byte(strings.Join(kept, "\n"))
		}
	}
	return data, cut
}

// inputs is a keyed digest of what a hold's derivation depends on besides
// the stores' contents: the named identities and the Datasets in scope
// (name, UID, generation).
func inputs(key []byte, named map[string][]string, datasets []retentionv1.Dataset) string {
	parts := []string{digest.Subject(key, named)}
	for _, ds := range datasets {
		parts = append(parts, fmt.Sprintf("%s/%s/%d", ds.Name, ds.UID, ds.Generation))
	}
	sort.Strings(parts[1:])
	sum := sha256.Sum256([]byte(strings.Join(parts, "\n")))
	return hex.EncodeToString(sum[:16])
}
