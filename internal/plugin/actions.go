package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	authenticationv1 "k8s.io/api/authentication/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

// mergePatch is a JSON merge patch of metadata.annotations and/or spec.
func mergePatch(annotations map[string]any, spec map[string]any) client.Patch {
	body := map[string]any{}
	if annotations != nil {
		body["metadata"] = map[string]any{"annotations": annotations}
	}
	if spec != nil {
		body["spec"] = spec
	}
	b, err := json.Marshal(body)
	if err != nil {
		panic(err) // maps of strings and bools always marshal
	}
	return client.RawPatch(types.MergePatchType, b)
}

// WhoAmI is the user name the API server authenticates the client as
// (SelfSubjectReview, as kubectl auth whoami): approval is recorded with it.
func WhoAmI(ctx context.Context, c client.Client) (string, error) {
	review := &authenticationv1.SelfSubjectReview{}
	if err := c.Create(ctx, review); err != nil {
		return "", fmt.Errorf("asking the API server who you are (SelfSubjectReview): %w", err)
	}
	if review.Status.UserInfo.Username == "" {
		return "", errors.New("the API server did not say who you are")
	}
	return review.Status.UserInfo.Username, nil
}

// Approve records user's approval of a DeletionRequest. The admission
// policy config/admission/deletionrequest_approval.yaml checks it: the
// annotation must name the user making the change, not the creator, and
// the user must hold the RBAC verb approve on deletionrequests.
func Approve(ctx context.Context, c client.Client, ns, name, user string) (string, error) {
	var dr retentionv1.DeletionRequest
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &dr); err != nil {
		return "", err
	}
	if by := dr.Annotations[retentionv1.AnnotationApprovedBy]; by != "" {
		if by == user {
			return fmt.Sprintf("deletionrequest/%s already approved by %s", name, by), nil
		}
		return "", fmt.Errorf("deletionrequest/%s is already approved by %s", name, by)
	}
	switch dr.Status.Phase {
	case retentionv1.RequestCompleted, retentionv1.RequestFailed:
		return "", fmt.Errorf("deletionrequest/%s has finished (phase %s); there is nothing to approve", name, dr.Status.Phase)
	}
	if err := c.Patch(ctx, &dr, mergePatch(map[string]any{retentionv1.AnnotationApprovedBy: user}, nil)); err != nil {
		return "", err
	}
	msg := fmt.Sprintf("deletionrequest/%s approved by %s", name, user)
	if !dr.Spec.RequireApproval && dr.Status.Phase != retentionv1.RequestAwaitingApproval {
		msg += " (it did not wait for an approval)"
	}
	return msg, nil
}

// ReleaseRun lets a PurgeJob stopped by its safety limit proceed: the
// annotation retention.lethe.dev/release-safety-limit=true on the job (the
// one annotation anyone allowed to patch PurgeJobs may set, see
// config/admission/purgejob_creator.yaml). A policy's run can also be
// released with retention.lethe.dev/release-run=<job> on the policy; the
// policy controller then sets the same annotation.
func ReleaseRun(ctx context.Context, c client.Client, ns, name string) (string, error) {
	var j retentionv1.PurgeJob
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &j); err != nil {
		return "", err
	}
	if j.Annotations[retentionv1.AnnotationReleaseSafetyLimit] == "true" {
		return fmt.Sprintf("purgejob/%s is already released", name), nil
	}
	c2 := meta.FindStatusCondition(j.Status.Conditions, retentionv1.ConditionStalled)
	if c2 == nil || c2.Status != "True" || c2.Reason != retentionv1.ReasonSafetyLimitExceeded {
		return "", fmt.Errorf("purgejob/%s is not stopped by its safety limit (phase %s); release-run only lets such a run proceed", name, orNone(string(j.Status.Phase)))
	}
	if err := c.Patch(ctx, &j, mergePatch(map[string]any{retentionv1.AnnotationReleaseSafetyLimit: "true"}, nil)); err != nil {
		return "", err
	}
	return fmt.Sprintf("purgejob/%s released past its safety limit (%s)", name, c2.Message), nil
}

// RunNow asks for one run of a policy now: annotation
// retention.lethe.dev/run-now set to a new token (the controller starts a
// run for each token it has not acted on, status.lastRunNowToken), even
// while the policy is suspended or not yet effective.
func RunNow(ctx context.Context, c client.Client, ns, name, token string) (string, error) {
	var p retentionv1.RetentionPolicy
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &p); err != nil {
		return "", err
	}
	if p.Annotations[retentionv1.AnnotationRunNow] == token {
		return "", fmt.Errorf("retentionpolicy/%s already has run-now token %s", name, token)
	}
	if err := c.Patch(ctx, &p, mergePatch(map[string]any{retentionv1.AnnotationRunNow: token}, nil)); err != nil {
		return "", err
	}
	return fmt.Sprintf("retentionpolicy/%s: run requested (%s=%s); its PurgeJob is listed by kubectl get purgejobs -l %s=%s",
		name, retentionv1.AnnotationRunNow, token, retentionv1.LabelPolicy, name), nil
}

// SetSuspend sets spec.suspend of a RetentionPolicy.
func SetSuspend(ctx context.Context, c client.Client, ns, name string, suspend bool) (string, error) {
	var p retentionv1.RetentionPolicy
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &p); err != nil {
		return "", err
	}
	verb := map[bool]string{true: "suspended", false: "resumed"}[suspend]
	if p.Spec.Suspend == suspend {
		return fmt.Sprintf("retentionpolicy/%s is already %s", name, verb), nil
	}
	if err := c.Patch(ctx, &p, mergePatch(nil, map[string]any{"suspend": suspend})); err != nil {
		return "", err
	}
	msg := fmt.Sprintf("retentionpolicy/%s %s", name, verb)
	if suspend && len(p.Status.Active) > 0 {
		msg += "; its running PurgeJobs finish (" + strings.Join(p.Status.Active, ", ") + ")"
	}
	return msg, nil
}

// SetJobSuspend sets spec.suspend of a PurgeJob, the one field of its spec
// the signature leaves out and the admission policy
// (config/admission/purgejob_creator.yaml) lets users change: a running job
// stops at its next batch boundary, a job not started does not start.
func SetJobSuspend(ctx context.Context, c client.Client, ns, name string, suspend bool) (string, error) {
	var j retentionv1.PurgeJob
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &j); err != nil {
		return "", err
	}
	verb := map[bool]string{true: "suspended", false: "resumed"}[suspend]
	if j.Spec.Suspend == suspend {
		return fmt.Sprintf("purgejob/%s is already %s", name, verb), nil
	}
	switch j.Status.Phase {
	case retentionv1.PurgeJobSucceeded, retentionv1.PurgeJobFailed:
		return "", fmt.Errorf("purgejob/%s has finished (phase %s)", name, j.Status.Phase)
	}
	if err := c.Patch(ctx, &j, mergePatch(nil, map[string]any{"suspend": suspend})); err != nil {
		return "", err
	}
	return fmt.Sprintf("purgejob/%s %s", name, verb), nil
}

// result is what an action prints with -o json|yaml.
type result struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Message   string `json:"message"`
}

func (o *Options) report(results []result) error {
	if ok, err := o.structured(results); ok {
		return err
	}
	for _, r := range results {
		fmt.Fprintln(o.Out, r.Message)
	}
	return nil
}

// each runs act on every name and reports all results; it fails if any did.
func (o *Options) each(names []string, act func(name string) (string, error)) error {
	var results []result
	var failed []string
	for _, n := range names {
		msg, err := act(n)
		if err != nil {
			fmt.Fprintf(o.Err, "error: %v\n", err)
			failed = append(failed, n)
			continue
		}
		results = append(results, result{Namespace: o.namespace, Name: n, Message: msg})
	}
	if err := o.report(results); err != nil {
		return err
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d failed: %s", len(failed), len(names), strings.Join(failed, ", "))
	}
	return nil
}

func (o *Options) approveCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "approve DELETIONREQUEST...",
		Short: "Approve DeletionRequests as yourself (needs the RBAC verb approve on deletionrequests; the creator cannot approve)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := o.ctx(cmd)
			user, err := WhoAmI(ctx, o.client)
			if err != nil {
				return err
			}
			return o.each(args, func(n string) (string, error) { return Approve(ctx, o.client, o.namespace, n, user) })
		},
	}
}

func (o *Options) releaseRunCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "release-run PURGEJOB...",
		Short: "Let a run (PurgeJob) stopped by its safety limit proceed",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.each(args, func(n string) (string, error) { return ReleaseRun(o.ctx(cmd), o.client, o.namespace, n) })
		},
	}
}

func (o *Options) runNowCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "run-now RETENTIONPOLICY...",
		Short: "Start a RetentionPolicy run now, whatever its schedule",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			token := o.Now().UTC().Format("20060102t150405z")
			return o.each(args, func(n string) (string, error) { return RunNow(o.ctx(cmd), o.client, o.namespace, n, token) })
		},
	}
}

func (o *Options) suspendCommand(suspend bool) *cobra.Command {
	use, short := "resume", "Resume a RetentionPolicy's schedule or a PurgeJob (spec.suspend: false)"
	if suspend {
		use, short = "suspend", "Stop a RetentionPolicy's schedule (its running PurgeJob finishes) or pause a PurgeJob at its next batch (spec.suspend: true)"
	}
	return &cobra.Command{
		Use:   use + " [retentionpolicy|purgejob] NAME...",
		Short: short,
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch strings.ToLower(args[0]) {
			case "retentionpolicy", "retentionpolicies", "rp", "rpol":
				args = args[1:]
			case "purgejob", "purgejobs", "pj":
				if len(args) < 2 {
					return errors.New("name at least one PurgeJob")
				}
				return o.each(args[1:], func(n string) (string, error) { return SetJobSuspend(o.ctx(cmd), o.client, o.namespace, n, suspend) })
			}
			if len(args) == 0 {
				return errors.New("name at least one RetentionPolicy")
			}
			return o.each(args, func(n string) (string, error) { return SetSuspend(o.ctx(cmd), o.client, o.namespace, n, suspend) })
		},
	}
}
