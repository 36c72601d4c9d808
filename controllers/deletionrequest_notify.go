package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/connect"
	"github.com/lethe-dev/lethe/internal/digest"
	"github.com/lethe-dev/lethe/internal/metrics"
	"github.com/lethe-dev/lethe/internal/notify"
	"github.com/lethe-dev/lethe/internal/outcome"
	"github.com/lethe-dev/lethe/internal/owned"
	"github.com/lethe-dev/lethe/internal/receipt"
	"github.com/lethe-dev/lethe/internal/request"
)

// +kubebuilder:rbac:groups=retention.lethe.dev,resources=recipients,verbs=get;list;watch

// noticesSecretName is the request's own Secret of erasure notices: one key
// per Recipient, the exact body sent, kept until every notice is final.
func noticesSecretName(dr *retentionv1.DeletionRequest) string { return dr.Name + "-notices" }

// notify sends the erasure notices of a completed erasure (docs/design.md
// §11). In the reconcile that completes it, it picks the Recipients concerned (their Datasets or
// categories in the plan, and at least one identity type of theirs known
// for the subject), builds each notice (internal/notify) and keeps the
// bodies in the Secret <request>-notices, owned by the request; the
// status lists them, Pending, with their webhook-id. Then each reconcile
// makes the attempts that are due, with the body from that Secret, so a
// restarted manager sends byte for byte what the first would have sent,
// under the same id, and never again once a notice is final. When every
// notice is final the Secret is deleted: identities are kept no longer than
// needed. It returns how long until the next attempt or deadline.
func (r *DeletionRequestReconciler) notify(ctx context.Context, p *request.Planner, dr *retentionv1.DeletionRequest, now time.Time, completedNow bool) (time.Duration, error) {
	c := meta.FindStatusCondition(dr.Status.Conditions, retentionv1.ConditionRecipientsNotified)
	if c == nil && completedNow {
		replay, err := r.replayOf(ctx, dr)
		if err != nil {
			return 0, err
		}
		if replay != "" {
			// A re-erasure after a restore repeats an erasure whose
			// Recipients were notified when it first completed: the
			// restore brought back this store's copy, not theirs.
			retentionv1.SetCondition(dr, retentionv1.ConditionRecipientsNotified, metav1.ConditionTrue, retentionv1.ReasonNotifiedAtOriginalErasure,
				fmt.Sprintf("A re-erasure of ErasureReplay %s after a restore: the Recipients were notified of the original erasure; no notice is sent again", replay))
			return 0, nil
		}
	}
	if c == nil && !completedNow {
		// Completed before this manager sent notices (an upgrade): the
		// parties are not told of old erasures all at once.
		return 0, nil
	}
	if c == nil || c.Status == metav1.ConditionUnknown {
		// Unknown until the notices are kept: a transient error here is
		// retried by the next reconcile.
		retentionv1.SetCondition(dr, retentionv1.ConditionRecipientsNotified, metav1.ConditionUnknown, retentionv1.ReasonNotifying, "Preparing the erasure notices")
		notices, err := r.prepareNotices(ctx, p, dr, now)
		if errors.Is(err, connect.ErrSecretNotFound) || outcome.AsStall(err) != nil {
			// The subject's identities cannot be read any more (the
			// identity Secret was deleted or changed since completion):
			// no notice can be built, now or later.
			msg := "No erasure notice could be built: " + err.Error()
			retentionv1.SetCondition(dr, retentionv1.ConditionRecipientsNotified, metav1.ConditionFalse, retentionv1.ReasonNoticeLost, msg)
			r.Recorder.Eventf(dr, nil, "Warning", retentionv1.ReasonNoticeLost, "Notify", "%s", msg)
			return 0, nil
		}
		if err != nil {
			return 0, err
		}
		dr.Status.Recipients = notices
		status, reason, msg := notify.Summary(notices)
		retentionv1.SetCondition(dr, retentionv1.ConditionRecipientsNotified, status, reason, msg)
		for _, n := range notices {
			r.Recorder.Eventf(dr, nil, "Normal", retentionv1.ReasonNotifying, "Notify", "Sending the erasure notice to Recipient %s (notice %s)", n.Name, n.NoticeID)
		}
	}
	if fresh, err := r.cacheFresh(ctx, dr, now); err != nil || !fresh {
		return time.Second, err
	}
	bodies, err := r.noticeBodies(ctx, dr)
	if err != nil {
		return 0, err
	}
	for i := range dr.Status.Recipients {
		n := &dr.Status.Recipients[i]
		if expired, ok := notify.Expire(*n, now); ok {
			*n = expired
			r.noticeFinal(ctx, dr, n)
			continue
		}
		if !notify.Due(*n, now) {
			continue
		}
		body, ok := bodies[n.Name]
		if !ok {
			*n = notify.Fail(*n, retentionv1.ReasonNoticeLost, fmt.Sprintf("The Secret %s that kept this notice is gone; it cannot be sent again", noticesSecretName(dr)))
			r.noticeFinal(ctx, dr, n)
			continue
		}
		r.attempt(ctx, dr, n, body, now)
	}
	status, reason, msg := notify.Summary(dr.Status.Recipients)
	retentionv1.SetCondition(dr, retentionv1.ConditionRecipientsNotified, status, reason, msg)
	next := notify.Next(dr.Status.Recipients)
	if next.IsZero() {
		if len(dr.Status.Recipients) == 0 {
			return 0, nil // no notices, no Secret
		}
		// Every notice is final: the bodies, which hold identities, go.
		return 0, owned.DeleteSecret(ctx, r.Client, r.APIReader, dr, noticesSecretName(dr))
	}
	return max(next.Sub(now), time.Second), nil
}

// cacheFresh reports whether the request read from the cache is the
// newest before an attempt is due: a status written moments ago (a notice
// acknowledged) that the cache has not seen yet must not send that notice
// again. Without a due attempt it costs nothing.
func (r *DeletionRequestReconciler) cacheFresh(ctx context.Context, dr *retentionv1.DeletionRequest, now time.Time) (bool, error) {
	due := false
	for _, n := range dr.Status.Recipients {
		due = due || notify.Due(n, now)
	}
	if !due || dr.ResourceVersion == "" {
		return true, nil
	}
	var latest retentionv1.DeletionRequest
	if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(dr), &latest); err != nil {
		return false, client.IgnoreNotFound(err)
	}
	return latest.ResourceVersion == dr.ResourceVersion, nil
}

// attempt makes the due attempt of one notice and reports it (events,
// metrics, the receipt's acknowledgements); a Recipient gone, or whose
// Secrets cannot be read, is a failed attempt (retried until the deadline,
// except a Recipient gone, which fails the notice).
func (r *DeletionRequestReconciler) attempt(ctx context.Context, dr *retentionv1.DeletionRequest, n *retentionv1.RecipientNotice, body []byte, now time.Time) {
	var rcpt retentionv1.Recipient
	err := r.Get(ctx, types.NamespacedName{Namespace: dr.Namespace, Name: n.Name}, &rcpt)
	if apierrors.IsNotFound(err) {
		*n = notify.Fail(*n, retentionv1.ReasonRecipientGone, fmt.Sprintf("Recipient %s was deleted before acknowledging", n.Name))
		r.noticeFinal(ctx, dr, n)
		return
	}
	var target notify.Target
	if err == nil {
		target, err = r.target(ctx, &rcpt)
	}
	mode := notify.Mode(&rcpt)
	var res notify.Result
	if err != nil {
		msg := err.Error()
		if connect.SecretReason(err) == "" && !errors.Is(err, notify.ErrInvalidSecret) && !errors.Is(err, notify.ErrInvalidURL) {
			msg = "reading Recipient " + n.Name + " failed"
		}
		res = notify.Result{Kind: notify.Failed, Message: msg}
		*n = notify.Step(*n, res, mode, now, r.NotifyBackoff)
	} else {
		*n, res = r.Notifier.Attempt(ctx, target, *n, mode, body, now, r.NotifyBackoff)
	}
	switch {
	case n.State == retentionv1.NoticeAcknowledged:
		receipt.Acknowledge(dr.Status.Receipt, n.Name, n.NoticeID, now)
		metrics.RecipientNotices.WithLabelValues(dr.Namespace, n.Name, "acknowledged").Inc()
		r.Recorder.Eventf(dr, nil, "Normal", retentionv1.ReasonNoticeAcknowledged, "Notify", "Recipient %s acknowledged the erasure notice %s", n.Name, n.NoticeID)
		log.FromContext(ctx).Info("Erasure notice acknowledged", "subject", digest.Short(dr.Status.SubjectDigest), "recipient", n.Name, "notice", n.NoticeID)
	case res.Kind == notify.Delivered:
		metrics.RecipientNotices.WithLabelValues(dr.Namespace, n.Name, "delivered").Inc()
		r.Recorder.Eventf(dr, nil, "Normal", retentionv1.ReasonNoticeDelivered, "Notify", "Delivered the erasure notice %s to Recipient %s; waiting for its acknowledgement", n.NoticeID, n.Name)
	case res.Kind == notify.Forged:
		metrics.RecipientNotices.WithLabelValues(dr.Namespace, n.Name, "forged").Inc()
		r.Recorder.Eventf(dr, nil, "Warning", retentionv1.ReasonForgedAcknowledgement, "Notify", "Recipient %s: %s", n.Name, res.Message)
	case res.Kind == notify.Failed:
		metrics.RecipientNotices.WithLabelValues(dr.Namespace, n.Name, "retried").Inc()
		r.Recorder.Eventf(dr, nil, "Normal", retentionv1.ReasonDeliveryFailed, "Notify", "Erasure notice %s to Recipient %s, attempt %d: %s; retrying at %s", n.NoticeID, n.Name, n.Attempts, res.Message, n.NextAttemptTime.UTC().Format(time.RFC3339))
	}
}

// noticeFinal reports a notice that failed for good: a Warning event and the
// metric.
func (r *DeletionRequestReconciler) noticeFinal(ctx context.Context, dr *retentionv1.DeletionRequest, n *retentionv1.RecipientNotice) {
	metrics.RecipientNotices.WithLabelValues(dr.Namespace, n.Name, "failed").Inc()
	r.Recorder.Eventf(dr, nil, "Warning", n.Reason, "Notify", "Erasure notice %s to Recipient %s failed: %s", n.NoticeID, n.Name, n.Message)
	log.FromContext(ctx).Info("Erasure notice failed", "subject", digest.Short(dr.Status.SubjectDigest), "recipient", n.Name, "reason", n.Reason)
}

// target reads how to reach a Recipient: its endpoints, its signing key and
// CA bundle, from Secrets marked for Lethe (internal/connect).
func (r *DeletionRequestReconciler) target(ctx context.Context, rcpt *retentionv1.Recipient) (notify.Target, error) {
	return recipientTarget(ctx, r.APIReader, rcpt)
}

func recipientTarget(ctx context.Context, reader client.Reader, rcpt *retentionv1.Recipient) (notify.Target, error) {
	t := notify.Target{Endpoint: rcpt.Spec.Endpoint, AckURL: rcpt.Spec.Acknowledgement.URL}
	if _, err := notify.ParseEndpoint(t.Endpoint); err != nil {
		return t, fmt.Errorf("spec.endpoint: %w", err)
	}
	if t.AckURL != "" {
		if _, err := notify.ParseEndpoint(t.AckURL); err != nil {
			return t, fmt.Errorf("spec.acknowledgement.url: %w", err)
		}
	}
	secret, err := connect.SecretKey(ctx, reader, rcpt.Namespace, rcpt.Spec.SigningSecretRef)
	if err != nil {
		return t, err
	}
	if t.Key, err = notify.ParseSecret(string(secret)); err != nil {
		return t, fmt.Errorf("%w: key %q of Secret %q: %w", connect.ErrInvalidSecret, rcpt.Spec.SigningSecretRef.Key, rcpt.Spec.SigningSecretRef.Name, err)
	}
	if ref := rcpt.Spec.CABundleSecretRef; ref != nil {
		if t.CABundle, err = connect.SecretKey(ctx, reader, rcpt.Namespace, *ref); err != nil {
			return t, err
		}
	}
	return t, nil
}

// prepareNotices picks the Recipients concerned and keeps their notices in
// the request's Secret, or finds that Secret made by an earlier pass (a
// manager stopped before it wrote the status): its keys are the recipients.
func (r *DeletionRequestReconciler) prepareNotices(ctx context.Context, p *request.Planner, dr *retentionv1.DeletionRequest, now time.Time) ([]retentionv1.RecipientNotice, error) {
	deadline := notify.Deadline(dr.Status.DeadlineTime.Time, dr.Status.CompletionTime.Time)
	entries := func(names []string) []retentionv1.RecipientNotice {
		slices.Sort(names)
		var out []retentionv1.RecipientNotice
		for _, name := range names {
			out = append(out, notify.New(name, notify.NoticeID(string(dr.UID), name), now, deadline))
		}
		return out
	}
	key := types.NamespacedName{Namespace: dr.Namespace, Name: noticesSecretName(dr)}
	var s corev1.Secret
	switch err := r.APIReader.Get(ctx, key, &s); {
	case err == nil:
		if !owned.By(&s, dr) {
			return nil, outcome.Stall(retentionv1.ReasonNoticeLost, fmt.Sprintf("the Secret %s exists but is not owned by this request; Lethe keeps the erasure notices there", key.Name))
		}
		names := make([]string, 0, len(s.Data))
		for name := range s.Data {
			names = append(names, name)
		}
		return entries(names), nil
	case !apierrors.IsNotFound(err):
		return nil, err
	}

	var list retentionv1.RecipientList
	if err := r.List(ctx, &list, client.InNamespace(dr.Namespace)); err != nil {
		return nil, err
	}
	if len(list.Items) == 0 {
		return nil, nil
	}
	datasets := map[string]*retentionv1.Dataset{}
	for _, pc := range dr.Status.Plan {
		if _, ok := datasets[pc.Dataset]; ok {
			continue
		}
		var ds retentionv1.Dataset
		if err := r.Get(ctx, types.NamespacedName{Namespace: dr.Namespace, Name: pc.Dataset}, &ds); err != nil {
			if client.IgnoreNotFound(err) != nil {
				return nil, err
			}
			datasets[pc.Dataset] = nil
			continue
		}
		datasets[pc.Dataset] = &ds
	}
	identities, err := p.LedgerIdentities(ctx, dr)
	if err != nil {
		return nil, fmt.Errorf("reading the subject's identities for the erasure notices: %w", err)
	}
	data := map[string][]byte{}
	for i := range list.Items {
		rcpt := &list.Items[i]
		if !rcpt.DeletionTimestamp.IsZero() {
			continue
		}
		names := notify.Datasets(rcpt, dr.Status.Plan, datasets)
		ids := notify.Identities(rcpt, identities)
		if len(names) == 0 || len(ids) == 0 {
			continue
		}
		body, err := notify.Build(dr, rcpt, names, ids)
		if err != nil {
			return nil, err
		}
		data[rcpt.Name] = body
	}
	if len(data) == 0 {
		return nil, nil
	}
	s = corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: dr.Namespace, Name: key.Name,
			Labels:          map[string]string{retentionv1.LabelDeletionRequest: dr.Name, retentionv1.LabelNotices: "true"},
			OwnerReferences: []metav1.OwnerReference{owned.Reference(dr, "DeletionRequest")}},
		Data: data,
	}
	if err := r.Create(ctx, &s); err != nil {
		return nil, fmt.Errorf("keeping the erasure notices in Secret %s: %w", key.Name, err)
	}
	names := make([]string, 0, len(data))
	for name := range data {
		names = append(names, name)
	}
	log.FromContext(ctx).Info("Erasure notices prepared", "subject", digest.Short(dr.Status.SubjectDigest), "recipients", strings.Join(names, ","))
	return entries(names), nil
}

// noticeBodies reads the notices kept in the request's Secret (none when
// every notice is final, or there is no Secret).
func (r *DeletionRequestReconciler) noticeBodies(ctx context.Context, dr *retentionv1.DeletionRequest) (map[string][]byte, error) {
	if notify.Next(dr.Status.Recipients).IsZero() {
		return nil, nil
	}
	var s corev1.Secret
	err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: dr.Namespace, Name: noticesSecretName(dr)}, &s)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if !owned.By(&s, dr) {
		return nil, nil
	}
	return s.Data, nil
}

// notifying reports whether some notice is still under way: the request
// then outlives its ttlSecondsAfterFinished until each is final (at the
// latest at its deadline).
func notifying(dr *retentionv1.DeletionRequest) bool {
	return !notify.Next(dr.Status.Recipients).IsZero()
}

// replayOf names the ErasureReplay that created dr ("" when none did): dr
// carries its label and a controller reference to it, and it exists with
// that UID and lists dr among its requests, so a request cannot claim to be
// a re-erasure by its labels and owner references.
func (r *DeletionRequestReconciler) replayOf(ctx context.Context, dr *retentionv1.DeletionRequest) (string, error) {
	name := dr.Labels[retentionv1.LabelErasureReplay]
	ref := metav1.GetControllerOf(dr)
	if name == "" || ref == nil || ref.Kind != "ErasureReplay" || ref.APIVersion != retentionv1.GroupVersion.String() || ref.Name != name {
		return "", nil
	}
	// Read fresh: the replay records its children in status right after
	// creating them, and only the manager writes status. Labels and owner
	// references are anyone's to set; the replay's list of its children is
	// not, so a request that is not on it is notified as any other.
	var er retentionv1.ErasureReplay
	if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: dr.Namespace, Name: name}, &er); err != nil {
		return "", client.IgnoreNotFound(err)
	}
	if er.UID != ref.UID || !slices.ContainsFunc(er.Status.Requests, func(rq retentionv1.ReplayRequest) bool { return rq.Name == dr.Name }) {
		return "", nil
	}
	return name, nil
}
