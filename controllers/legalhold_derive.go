package controllers

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
	"sigs.k8s.io/controller-runtime/pkg/log"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/digest"
	"github.com/lethe-dev/lethe/internal/holds"
	"github.com/lethe-dev/lethe/internal/outcome"
)

// A hold follows the person: its subjects' further identities are derived
// from the stores with the same derivation as a DeletionRequest's
// (deriveFromStores), across the Datasets in the hold's scope, and kept in
// the hold's own Secret <hold>-derived (created owned by the hold, removed
// with it and when the hold ends). holds.Subjects reads them, so retention
// runs and erasures exclude records keyed by a derived identity too. The
// values never reach status, events, logs or metrics: status.derived counts
// them, the IdentitiesDerived condition names the types.
//
// Unlike a request, a hold never stops at an identity shared by several
// subjects: holding more keeps data, it never deletes any. It keeps up to
// maxHoldDerivedValues values per type and maxHoldDerivedBytes in all, and
// says so (reason DerivationLimit) when there were more.
const (
	maxHoldDerivedValues = 1000
	maxHoldDerivedBytes  = 512 << 10 // a Secret holds at most 1 MiB

	// annotationDerivedInputs on the hold's Secret is a keyed digest of
	// what the derivation read (the named identities, the Datasets'
	// generations); annotationDerivedAt is when it ran. The stores are read
	// again when either is outdated.
	annotationDerivedInputs    = "retention.lethe.dev/derived-inputs"
	annotationDerivedAt        = "retention.lethe.dev/derived-at"
	annotationDerivedTruncated = "retention.lethe.dev/derived-truncated"
)

var holdBounds = derivationBounds{max: maxHoldDerivedValues}

// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;create;update;delete
// +kubebuilder:rbac:groups=retention.lethe.dev,resources=datastores;retentionpolicies,verbs=get;list;watch

// holdDerivation is what deriving did for a hold, without values.
type holdDerivation struct {
	how       map[string]string // derived type → "from via collection"
	counts    map[string]int    // derived type → values kept
	truncated []string          // types cut at the bounds
	// next is when the stores are read again.
	next time.Duration
}

// derive keeps the hold's derived identities current in its Secret and
// reports them in status (counts and types only). It reads the stores when
// the named identities or the Datasets changed, or the recheck interval
// passed; otherwise the Secret stands.
func (r *LegalHoldReconciler) derive(ctx context.Context, h *retentionv1.LegalHold, named map[string][]string, now time.Time) (time.Duration, error) {
	datasets, err := r.holdDatasets(ctx, h)
	if err != nil {
		return 0, err
	}
	key := types.NamespacedName{Namespace: h.Namespace, Name: holds.DerivedSecretName(h)}
	var s corev1.Secret
	exists := true
	switch err := r.APIReader.Get(ctx, key, &s); {
	case apierrors.IsNotFound(err):
		exists = false
	case err != nil:
		return 0, err
	case !holds.OwnedBy(&s, h):
		return 0, outcome.Stall(retentionv1.ReasonDerivationFailed, fmt.Sprintf("Secret %s exists but is not owned by this hold; Lethe keeps the hold's derived identities there", key.Name))
	}

	if len(derivable(datasets, identityTypes(named))) == 0 {
		// No Dataset in scope links the held types to others.
		if exists {
			if err := r.Delete(ctx, &s); client.IgnoreNotFound(err) != nil {
				return 0, err
			}
		}
		h.Status.Derived = 0
		retentionv1.SetCondition(h, retentionv1.ConditionIdentitiesDerived, metav1.ConditionFalse, retentionv1.ReasonNothingDerived,
			"No Dataset in scope links the held identity types to others; nothing to derive")
		return 0, nil
	}

	inputs := derivationInputs(r.DigestKey, named, datasets)
	interval := r.recheckInterval()
	if exists && s.Annotations[annotationDerivedInputs] == inputs {
		if at, err := time.Parse(time.RFC3339, s.Annotations[annotationDerivedAt]); err == nil && now.Sub(at) < interval && !at.After(now) {
			d, err := storedDerivation(&s)
			if err != nil {
				return 0, err
			}
			d.next = at.Add(interval).Sub(now)
			r.reportDerivation(ctx, h, d, key.Name)
			return d.next, nil
		}
	}

	out, how, truncated, err := r.deriveFromStores(ctx, datasets, named, holdBounds)
	if err != nil {
		return 0, err
	}
	data, cut := derivedSecretData(out, how, maxHoldDerivedBytes)
	for _, t := range cut {
		if !slices.Contains(truncated, t) {
			truncated = append(truncated, t)
		}
	}
	slices.Sort(truncated)
	b, err := json.Marshal(how)
	if err != nil {
		return 0, err
	}
	annotations := map[string]string{
		annotationDerivedFrom:   string(b),
		annotationDerivedInputs: inputs,
		annotationDerivedAt:     now.UTC().Format(time.RFC3339),
	}
	if len(truncated) > 0 {
		annotations[annotationDerivedTruncated] = strings.Join(truncated, ",")
	}
	if exists {
		// Only data and annotations change: the owner reference set at
		// creation stays as it is.
		s.Data, s.Annotations = data, annotations
		if err := r.Update(ctx, &s); err != nil {
			return 0, fmt.Errorf("keeping derived identities in Secret %s: %w", key.Name, err)
		}
	} else {
		s = corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: h.Namespace, Name: key.Name, Labels: map[string]string{holds.LabelLegalHold: h.Name, retentionv1.LabelSecretConsent: "true"}, Annotations: annotations},
			Type:       corev1.SecretTypeOpaque,
			Data:       data,
		}
		// Owned from creation: the owner reference is part of the create
		// call, never patched in later.
		if err := controllerutil.SetControllerReference(h, &s, r.Scheme()); err != nil {
			return 0, err
		}
		if err := r.Create(ctx, &s); err != nil {
			return 0, fmt.Errorf("keeping derived identities in Secret %s: %w", key.Name, err)
		}
	}
	d, err := storedDerivation(&s)
	if err != nil {
		return 0, err
	}
	d.next = interval
	r.reportDerivation(ctx, h, d, key.Name)
	return d.next, nil
}

// reportDerivation sets status.derived and the IdentitiesDerived condition,
// and records an event and a log line when what was derived changed — types
// and counts, never values.
func (r *LegalHoldReconciler) reportDerivation(ctx context.Context, h *retentionv1.LegalHold, d holdDerivation, secret string) {
	total := 0
	for _, n := range d.counts {
		total += n
	}
	h.Status.Derived = int32(total)
	reason, msg := derivationMessage(d, secret)
	status := metav1.ConditionTrue
	if total == 0 {
		status = metav1.ConditionFalse
	}
	was := findCondition(h.Status.Conditions, retentionv1.ConditionIdentitiesDerived)
	retentionv1.SetCondition(h, retentionv1.ConditionIdentitiesDerived, status, reason, msg)
	if was != nil && was.Reason == reason && was.Message == msg {
		return
	}
	kinds := slices.Sorted(maps.Keys(d.counts))
	if total > 0 {
		eventType := "Normal"
		if reason == retentionv1.ReasonDerivationLimit {
			eventType = "Warning"
		}
		r.Recorder.Eventf(h, nil, eventType, reason, "Derive", "%s", msg)
	}
	log.FromContext(ctx).Info("LegalHold identities derived", "types", kinds, "values", total, "truncated", d.truncated)
}

// derivationMessage describes a hold's derivation by types, counts and the
// collections read, never by values.
func derivationMessage(d holdDerivation, secret string) (reason, msg string) {
	var parts []string
	for _, t := range slices.Sorted(maps.Keys(d.counts)) {
		n := d.counts[t]
		if n == 0 {
			continue
		}
		unit := "values"
		if n == 1 {
			unit = "value"
		}
		part := fmt.Sprintf("%s (%d %s)", t, n, unit)
		if how := d.how[t]; how != "" {
			part += " from " + how
		}
		parts = append(parts, part)
	}
	if len(parts) == 0 {
		return retentionv1.ReasonNothingDerived, "The stores hold no further identities of the held subjects"
	}
	msg = fmt.Sprintf("Holding derived identities too: %s; the values are kept in Secret %s", strings.Join(parts, "; "), secret)
	if len(d.truncated) > 0 {
		return retentionv1.ReasonDerivationLimit, msg + fmt.Sprintf(". More values of %s were found than one Secret keeps (%d per type, %d KiB in all): those beyond are not held by derivation; name them in the hold",
			strings.Join(d.truncated, ", "), maxHoldDerivedValues, maxHoldDerivedBytes>>10)
	}
	return retentionv1.ReasonIdentitiesDerived, msg
}

// storedDerivation reads what a hold's Secret says was derived (types,
// counts, how; values are only counted).
func storedDerivation(s *corev1.Secret) (holdDerivation, error) {
	d := holdDerivation{how: map[string]string{}, counts: map[string]int{}}
	if a := s.Annotations[annotationDerivedFrom]; a != "" {
		if err := json.Unmarshal([]byte(a), &d.how); err != nil {
			return d, outcome.Stall(retentionv1.ReasonDerivationFailed, fmt.Sprintf("Secret %s: annotation %s is not valid JSON", s.Name, annotationDerivedFrom))
		}
	}
	for t, v := range s.Data {
		if n := len(holds.SplitValues(string(v))); n > 0 {
			d.counts[t] = n
		}
	}
	if a := s.Annotations[annotationDerivedTruncated]; a != "" {
		d.truncated = strings.Split(a, ",")
	}
	return d, nil
}

// derivedSecretData is the Secret data of derived identities: per derived
// type, its values newline-separated, in all at most maxBytes. Types that
// do not fit whole keep the values that fit, and are returned as cut.
func derivedSecretData(identities map[string][]string, how map[string]string, maxBytes int) (map[string][]byte, []string) {
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

// derivationInputs is a keyed digest of what a hold's derivation depends on
// besides the stores' contents: the named identities and the Datasets in
// scope (name, UID, generation).
func derivationInputs(key []byte, named map[string][]string, datasets []retentionv1.Dataset) string {
	parts := []string{digest.Subject(key, named)}
	for _, ds := range datasets {
		parts = append(parts, fmt.Sprintf("%s/%s/%d", ds.Name, ds.UID, ds.Generation))
	}
	sort.Strings(parts[1:])
	sum := sha256.Sum256([]byte(strings.Join(parts, "\n")))
	return hex.EncodeToString(sum[:16])
}

// holdDatasets lists the Datasets a hold's derivation reads: those it names,
// or every Dataset of its namespace. (Its collection and category scope
// limits what it holds, not where identities are linked: a users table
// outside it still links a held user_id to an email.)
func (r *LegalHoldReconciler) holdDatasets(ctx context.Context, h *retentionv1.LegalHold) ([]retentionv1.Dataset, error) {
	var list retentionv1.DatasetList
	if err := r.List(ctx, &list, client.InNamespace(h.Namespace)); err != nil {
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

// forgetDerived removes a hold's derived identities once it has ended: they
// are personal data, and an ended hold keeps nothing.
func (r *LegalHoldReconciler) forgetDerived(ctx context.Context, h *retentionv1.LegalHold) error {
	var s corev1.Secret
	switch err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: h.Namespace, Name: holds.DerivedSecretName(h)}, &s); {
	case apierrors.IsNotFound(err):
	case err != nil:
		return err
	case holds.OwnedBy(&s, h):
		if err := r.Delete(ctx, &s); client.IgnoreNotFound(err) != nil {
			return err
		}
	}
	h.Status.Derived = 0
	if findCondition(h.Status.Conditions, retentionv1.ConditionIdentitiesDerived) != nil {
		retentionv1.SetCondition(h, retentionv1.ConditionIdentitiesDerived, metav1.ConditionFalse, string(h.Status.Phase),
			"The hold has ended; its derived identities were removed")
	}
	return nil
}
