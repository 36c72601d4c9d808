package controllers

import (
	"context"
	"crypto/x509"
	"errors"
	"net"
	"strconv"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/connect"
	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/notify"
	"github.com/lethe-dev/lethe/internal/outcome"
)

// RecipientReconciler checks a Recipient's declaration: its signing Secret
// (a Standard Webhooks secret), its CA bundle and its endpoints' addresses
// under the manager's network policy. It sends nothing: DeletionRequests
// send the notices (deletionrequest_notify.go).
type RecipientReconciler struct {
	Deps
	Network *datastore.NetworkPolicy
}

// +kubebuilder:rbac:groups=retention.lethe.dev,resources=recipients/status,verbs=get;update;patch

// recipientRecheck is how often a Ready Recipient is checked again (its
// Secrets and the addresses its host resolves to may change).
const recipientRecheck = 10 * time.Minute

// SetupWithManager registers the controller.
func (r *RecipientReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("recipient").
		For(&retentionv1.Recipient{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Complete(r)
}

// Reconcile checks the Recipient and writes Ready or Stalled.
func (r *RecipientReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var rcpt retentionv1.Recipient
	if err := r.Get(ctx, req.NamespacedName, &rcpt); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if !rcpt.DeletionTimestamp.IsZero() {
		return reconcile.Result{}, nil
	}
	w := newStatusWriter(r.Client, &rcpt)
	rcpt.Status.ObservedGeneration = rcpt.Generation
	err := r.check(ctx, &rcpt)
	switch se := outcome.AsStall(err); {
	case se != nil:
		retentionv1.MarkStalled(&rcpt, se.Reason, se.Msg)
	case err == nil:
		retentionv1.MarkReady(&rcpt, retentionv1.ReasonValid, "The signing Secret, the CA bundle and the endpoint's addresses check out; deliveries show on each DeletionRequest")
	default:
		// Transient (a host that does not resolve now, the API): retried.
		retentionv1.MarkNotReady(&rcpt, retentionv1.ReasonConnectionFailed, err.Error()+"; retrying")
		err = outcome.Wait(time.Minute, retentionv1.ReasonConnectionFailed, err.Error()+"; retrying")
	}
	res, err := outcome.Result(err, recipientRecheck)
	if werr := w.write(ctx, &rcpt); werr != nil {
		return reconcile.Result{}, errors.Join(err, werr)
	}
	return res, err
}

// check returns a stall for what needs a human: an invalid URL, a Secret
// missing, unmarked or invalid, an address the network policy refuses.
// A host that does not resolve now is a transient error.
func (r *RecipientReconciler) check(ctx context.Context, rcpt *retentionv1.Recipient) error {
	// The addresses first: nothing else matters for an endpoint the
	// manager may not reach.
	policy := r.Network
	if policy == nil {
		policy = datastore.DefaultNetworkPolicy()
	}
	for _, raw := range []string{rcpt.Spec.Endpoint, rcpt.Spec.Acknowledgement.URL} {
		if raw == "" {
			continue
		}
		u, err := notify.ParseEndpoint(raw)
		if err != nil {
			return outcome.Stall(retentionv1.ReasonInvalidSpec, err.Error())
		}
		port := 443
		if p := u.Port(); p != "" {
			port, _ = strconv.Atoi(p)
		}
		if _, err := policy.Resolve(ctx, u.Hostname(), port); err != nil {
			if na := datastore.AsNotAllowed(err); na != nil {
				return outcome.Stall(retentionv1.ReasonNetworkNotAllowed, na.Error())
			}
			var dns *net.DNSError
			if errors.As(err, &dns) {
				return errors.New("the endpoint's host " + strconv.Quote(u.Hostname()) + " does not resolve")
			}
			return err
		}
	}
	t, err := recipientTarget(ctx, r.APIReader, rcpt)
	switch {
	case errors.Is(err, notify.ErrInvalidURL):
		return outcome.Stall(retentionv1.ReasonInvalidSpec, err.Error())
	case connect.SecretReason(err) != "":
		return outcome.Stall(connect.SecretReason(err), err.Error())
	case err != nil:
		return err
	}
	if len(t.CABundle) > 0 && !x509.NewCertPool().AppendCertsFromPEM(t.CABundle) {
		return outcome.Stall(retentionv1.ReasonInvalidSecret, "key "+strconv.Quote(rcpt.Spec.CABundleSecretRef.Key)+" of Secret "+strconv.Quote(rcpt.Spec.CABundleSecretRef.Name)+" holds no PEM certificate")
	}
	return nil
}
