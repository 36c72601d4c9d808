package controllers

import (
	"context"
	"maps"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/log"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/derive"
)

// A hold follows the person: its subjects' further identities are derived
// from the stores (internal/derive, the same derivation as a
// DeletionRequest's) and kept in the hold's own Secret <hold>-derived while
// it is active; status.derived counts them, the IdentitiesDerived condition
// names the types, never the values.

// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;create;update;delete
// +kubebuilder:rbac:groups=retention.lethe.dev,resources=datastores;retentionpolicies,verbs=get;list;watch

// deriver keeps holds' derived identities.
func (r *LegalHoldReconciler) deriver() *derive.Hold {
	return &derive.Hold{
		Stores:   derive.Stores{Client: r.Client, Drivers: r.Pool},
		Client:   r.Client,
		Reader:   r.APIReader,
		Key:      r.DigestKey,
		Interval: r.recheckInterval(),
	}
}

// derive keeps the hold's derived identities current in its Secret and
// reports them in status (counts and types only). It returns when the stores
// are read again (0: never, nothing links the held types).
func (r *LegalHoldReconciler) derive(ctx context.Context, h *retentionv1.LegalHold, named map[string][]string, now time.Time) (time.Duration, error) {
	d, err := r.deriver().Refresh(ctx, h, named, now)
	if err != nil {
		return 0, err
	}
	if !d.Linked {
		h.Status.Derived = 0
		retentionv1.SetCondition(h, retentionv1.ConditionIdentitiesDerived, metav1.ConditionFalse, retentionv1.ReasonNothingDerived,
			"No Dataset in scope links the held identity types to others; nothing to derive")
		return 0, nil
	}
	r.reportDerivation(ctx, h, d)
	return d.Next, nil
}

// reportDerivation sets status.derived and the IdentitiesDerived condition,
// and records an event and a log line when what was derived changed — types
// and counts, never values.
func (r *LegalHoldReconciler) reportDerivation(ctx context.Context, h *retentionv1.LegalHold, d derive.HoldDerivation) {
	total := d.Total()
	h.Status.Derived = int32(total)
	reason, msg := d.Message()
	status := metav1.ConditionTrue
	if total == 0 {
		status = metav1.ConditionFalse
	}
	// A copy: SetCondition changes the condition in place.
	var was *metav1.Condition
	if c := findCondition(h.Status.Conditions, retentionv1.ConditionIdentitiesDerived); c != nil {
		was = c.DeepCopy()
	}
	retentionv1.SetCondition(h, retentionv1.ConditionIdentitiesDerived, status, reason, msg)
	if was != nil && was.Reason == reason && was.Message == msg {
		return
	}
	kinds := slices.Sorted(maps.Keys(d.Counts))
	if total > 0 {
		eventType := "Normal"
		if reason == retentionv1.ReasonDerivationLimit {
			eventType = "Warning"
		}
		r.Recorder.Eventf(h, nil, eventType, reason, "Derive", "%s", msg)
	}
	log.FromContext(ctx).Info("LegalHold identities derived", "types", kinds, "values", total, "truncated", d.Truncated)
}

// forgetDerived removes a hold's derived identities once it has ended: they
// are personal data, and an ended hold keeps nothing.
func (r *LegalHoldReconciler) forgetDerived(ctx context.Context, h *retentionv1.LegalHold) error {
	if err := r.deriver().Forget(ctx, h); err != nil {
		return err
	}
	h.Status.Derived = 0
	if findCondition(h.Status.Conditions, retentionv1.ConditionIdentitiesDerived) != nil {
		retentionv1.SetCondition(h, retentionv1.ConditionIdentitiesDerived, metav1.ConditionFalse, string(h.Status.Phase),
			"The hold has ended; its derived identities were removed")
	}
	return nil
}
