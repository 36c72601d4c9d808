package plugin

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

// States of `status`, the first column an admin reads: what needs a human
// (Stalled, Overdue, AwaitingApproval), what waits on the law (Held), what
// works (Running), and what is fine.
const (
	StateStalled          = "Stalled"
	StateOverdue          = "Overdue"
	StateAwaitingApproval = "AwaitingApproval"
	StateHeld             = "Held"
	StateHolding          = "Holding"
	StateRunning          = "Running"
	StateReviewing        = "Reviewing"
	StateSuspended        = "Suspended"
	StateNotReady         = "NotReady"
	StateReady            = "Ready"
	StateFailed           = "Failed"
	StateCompleted        = "Completed"
	StateSucceeded        = "Succeeded"
	StateEnded            = "Ended"
	StatePending          = "Pending"
)

// Row is one Lethe object in `status`.
type Row struct {
	Namespace string    `json:"namespace"`
	Kind      string    `json:"kind"`
	Name      string    `json:"name"`
	State     string    `json:"state"`
	Detail    string    `json:"detail,omitempty"`
	Created   time.Time `json:"created"`
}

// overdueGrace is how late a policy's next run may be before `status`
// calls the policy overdue: the manager was down or cannot reconcile.
const overdueGrace = 5 * time.Minute

func stalled(o retentionv1.Object) *metav1.Condition {
	c := meta.FindStatusCondition(o.GetConditions(), retentionv1.ConditionStalled)
	if c != nil && c.Status == metav1.ConditionTrue {
		return c
	}
	return nil
}

func readiness(o retentionv1.Object) (string, string) {
	c := meta.FindStatusCondition(o.GetConditions(), retentionv1.ConditionReady)
	switch {
	case c == nil:
		return StatePending, "not yet seen by the manager"
	case c.Status == metav1.ConditionTrue:
		return StateReady, c.Message
	default:
		return StateNotReady, c.Reason + ": " + c.Message
	}
}

func base(o retentionv1.Object, kind string) Row {
	return Row{Namespace: o.GetNamespace(), Kind: kind, Name: o.GetName(), Created: o.GetCreationTimestamp().Time}
}

// stalledRow fills r from a Stalled condition and reports whether there was one.
func stalledRow(r *Row, o retentionv1.Object) bool {
	if c := stalled(o); c != nil {
		r.State, r.Detail = StateStalled, c.Reason+": "+c.Message
		return true
	}
	return false
}

// DataStoreRow is the state of a DataStore.
func DataStoreRow(s *retentionv1.DataStore) Row {
	r := base(s, "DataStore")
	if !stalledRow(&r, s) {
		r.State, r.Detail = readiness(s)
	}
	return r
}

// DatasetRow is the state of a Dataset.
func DatasetRow(d *retentionv1.Dataset) Row {
	r := base(d, "Dataset")
	if !stalledRow(&r, d) {
		r.State, r.Detail = readiness(d)
	}
	return r
}

// PolicyRow is the state of a RetentionPolicy at now.
func PolicyRow(p *retentionv1.RetentionPolicy, now time.Time) Row {
	r := base(p, "RetentionPolicy")
	if stalledRow(&r, p) {
		return r
	}
	var next string
	if t := p.Status.NextScheduleTime; t != nil {
		next = "next run " + when(&t.Time, now)
	}
	last := ""
	if run := p.Status.LastRun; run != nil {
		last = fmt.Sprintf("last run %s %s", run.PurgeJob, run.Result)
	}
	switch {
	case len(p.Status.Active) > 0:
		r.State, r.Detail = StateRunning, "runs "+strings.Join(p.Status.Active, ", ")
	case p.Spec.Suspend:
		r.State, r.Detail = StateSuspended, join("spec.suspend is true", last)
	case p.Status.NextScheduleTime != nil && now.Sub(p.Status.NextScheduleTime.Time) > overdueGrace:
		r.State, r.Detail = StateOverdue, join(next+" (is the manager running?)", last)
	default:
		r.State, r.Detail = readiness(p)
		if r.State == StateReady {
			r.Detail = join(next, last)
		}
	}
	return r
}

// PurgeJobRow is the state of a PurgeJob.
func PurgeJobRow(j *retentionv1.PurgeJob) Row {
	r := base(j, "PurgeJob")
	counts := fmt.Sprintf("%s: %d matched, %d deleted, %d anonymized", j.Spec.Mode, j.Status.Matched, j.Status.Deleted, j.Status.Anonymized)
	if j.Status.Held > 0 {
		counts += fmt.Sprintf(", %d held", j.Status.Held)
	}
	if stalledRow(&r, j) {
		if c := stalled(j); c != nil && c.Reason == retentionv1.ReasonSafetyLimitExceeded && j.Annotations[retentionv1.AnnotationReleaseSafetyLimit] != "true" {
			r.Detail += " (kubectl lethe release-run " + j.Name + ")"
		}
		return r
	}
	switch j.Status.Phase {
	case retentionv1.PurgeJobSucceeded:
		r.State = StateSucceeded
	case retentionv1.PurgeJobFailed:
		r.State = StateFailed
		if c := meta.FindStatusCondition(j.Status.Conditions, retentionv1.ConditionReady); c != nil {
			counts = c.Reason + ": " + c.Message
		}
	case retentionv1.PurgeJobRunning:
		r.State = StateRunning
	case retentionv1.PurgeJobSuspended:
		r.State = StateSuspended
		counts += " (kubectl lethe resume purgejob " + j.Name + ")"
	default:
		r.State = StatePending
	}
	r.Detail = counts
	return r
}

// RequestRow is the state of a DeletionRequest at now.
func RequestRow(d *retentionv1.DeletionRequest, now time.Time) Row {
	r := base(d, "DeletionRequest")
	var deadline string
	if t := d.Status.DeadlineTime; t != nil {
		deadline = "deadline " + when(&t.Time, now)
	}
	done := d.Status.Phase == retentionv1.RequestCompleted || d.Status.Phase == retentionv1.RequestFailed
	overdue := !done && d.Status.DeadlineTime != nil && now.After(d.Status.DeadlineTime.Time)
	switch {
	case stalledRow(&r, d):
		if overdue {
			r.Detail = join(r.Detail, "overdue: "+deadline)
		}
	case overdue:
		r.State, r.Detail = StateOverdue, join(deadline, "phase "+string(d.Status.Phase))
	case d.Status.Phase == retentionv1.RequestHeld:
		r.State, r.Detail = StateHeld, join("by "+strings.Join(d.Status.HeldBy, ", "), deadline)
	case d.Status.Phase == retentionv1.RequestAwaitingApproval:
		r.State, r.Detail = StateAwaitingApproval, join("kubectl lethe approve "+d.Name, deadline)
	case d.Status.Phase == retentionv1.RequestReviewing:
		var nb string
		if t := d.Status.NotBefore; t != nil {
			nb = "review window ends " + when(&t.Time, now)
		}
		r.State, r.Detail = StateReviewing, join(nb, deadline)
	case d.Status.Phase == retentionv1.RequestQueued || d.Status.Phase == retentionv1.RequestRunning:
		r.State, r.Detail = StateRunning, join("PurgeJobs "+strings.Join(d.Status.PurgeJobs, ", "), deadline)
	case d.Status.Phase == retentionv1.RequestCompleted:
		r.State = StateCompleted
		if rc := d.Status.Receipt; rc != nil {
			r.Detail = "receipt sha256 " + short(rc.SHA256)
		}
	case d.Status.Phase == retentionv1.RequestFailed:
		r.State = StateFailed
		if c := meta.FindStatusCondition(d.Status.Conditions, retentionv1.ConditionReady); c != nil {
			r.Detail = c.Reason + ": " + c.Message
		}
	default:
		r.State, r.Detail = StatePending, deadline
	}
	return r
}

// HoldRow is the state of a LegalHold.
func HoldRow(h *retentionv1.LegalHold) Row {
	r := base(h, "LegalHold")
	if stalledRow(&r, h) {
		return r
	}
	switch h.Status.Phase {
	case retentionv1.HoldActive:
		r.State = StateHolding
		r.Detail = fmt.Sprintf("%d subjects, %d derived", h.Status.Subjects, h.Status.Derived)
		if len(h.Status.Blocking) > 0 {
			r.Detail += "; blocking " + strings.Join(h.Status.Blocking, ", ")
		}
	case retentionv1.HoldExpired, retentionv1.HoldReleased:
		r.State, r.Detail = StateEnded, string(h.Status.Phase)
	default:
		r.State, r.Detail = readiness(h)
	}
	return r
}

func join(parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, "; ")
}

func short(sum string) string {
	if len(sum) > 12 {
		return sum[:12]
	}
	return sum
}

// Rows lists every Lethe object of namespace ns ("" for all) with its state.
func Rows(ctx context.Context, c client.Reader, ns string, now time.Time) ([]Row, error) {
	var rows []Row
	opts := []client.ListOption{client.InNamespace(ns)}
	var stores retentionv1.DataStoreList
	if err := c.List(ctx, &stores, opts...); err != nil {
		return nil, err
	}
	for i := range stores.Items {
		rows = append(rows, DataStoreRow(&stores.Items[i]))
	}
	var sets retentionv1.DatasetList
	if err := c.List(ctx, &sets, opts...); err != nil {
		return nil, err
	}
	for i := range sets.Items {
		rows = append(rows, DatasetRow(&sets.Items[i]))
	}
	var policies retentionv1.RetentionPolicyList
	if err := c.List(ctx, &policies, opts...); err != nil {
		return nil, err
	}
	for i := range policies.Items {
		rows = append(rows, PolicyRow(&policies.Items[i], now))
	}
	var jobs retentionv1.PurgeJobList
	if err := c.List(ctx, &jobs, opts...); err != nil {
		return nil, err
	}
	for i := range jobs.Items {
		rows = append(rows, PurgeJobRow(&jobs.Items[i]))
	}
	var reqs retentionv1.DeletionRequestList
	if err := c.List(ctx, &reqs, opts...); err != nil {
		return nil, err
	}
	for i := range reqs.Items {
		rows = append(rows, RequestRow(&reqs.Items[i], now))
	}
	var holds retentionv1.LegalHoldList
	if err := c.List(ctx, &holds, opts...); err != nil {
		return nil, err
	}
	for i := range holds.Items {
		rows = append(rows, HoldRow(&holds.Items[i]))
	}
	kindOrder := map[string]int{"DataStore": 0, "Dataset": 1, "RetentionPolicy": 2, "PurgeJob": 3, "DeletionRequest": 4, "LegalHold": 5}
	sort.SliceStable(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		if a.Kind != b.Kind {
			return kindOrder[a.Kind] < kindOrder[b.Kind]
		}
		return a.Name < b.Name
	})
	return rows, nil
}

func (o *Options) statusCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Every Lethe object of the namespace and its state: running, held, stalled, overdue, awaiting approval",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			now := o.Now()
			rows, err := Rows(o.ctx(cmd), o.client, o.listNamespace(), now)
			if err != nil {
				return err
			}
			if ok, err := o.structured(rows); ok {
				return err
			}
			if len(rows) == 0 {
				fmt.Fprintf(o.Err, "No Lethe objects found in %s.\n", o.where())
				return nil
			}
			header := []string{"KIND", "NAME", "STATE", "AGE", "DETAIL"}
			if o.AllNamespaces {
				header = append([]string{"NAMESPACE"}, header...)
			}
			var out [][]string
			for _, r := range rows {
				cells := []string{r.Kind, r.Name, r.State, age(now.Sub(r.Created)), r.Detail}
				if o.AllNamespaces {
					cells = append([]string{r.Namespace}, cells...)
				}
				out = append(out, cells)
			}
			return table(o.Out, header, out)
		},
	}
	cmd.Flags().BoolVarP(&o.AllNamespaces, "all-namespaces", "A", false, "list in every namespace")
	return cmd
}

func (o *Options) where() string {
	if o.AllNamespaces {
		return "any namespace"
	}
	return "namespace " + o.namespace
}
