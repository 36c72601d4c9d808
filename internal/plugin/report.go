package plugin

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

// Promise is one rule of a RetentionPolicy: how long, what happens, and
// how it was kept at the last run.
type Promise struct {
	Namespace string `json:"namespace"`
	Policy    string `json:"policy"`
	Rule      string `json:"rule"`
	Action    string `json:"action"`
	OlderThan string `json:"olderThan"`
	Mode      string `json:"mode"`
	// PastRetention is how many records are past the period now, from the
	// policy's status.backlog (what lethe_records_past_retention exports);
	// nil before the manager has counted them.
	PastRetention *int64 `json:"pastRetention,omitempty"`
	// Held is how many of the records past the period legal holds keep.
	Held int64 `json:"held,omitempty"`
	// Accuracy is Exact or Estimated.
	Accuracy string `json:"accuracy,omitempty"`
	// MeasuredTime is when they were counted.
	MeasuredTime *time.Time `json:"measuredTime,omitempty"`
	LastRun      string     `json:"lastRun,omitempty"`
	LastRunTime  *time.Time `json:"lastRunTime,omitempty"`
	LastResult   string     `json:"lastResult,omitempty"`
}

// Request is one DeletionRequest: phase, deadline, receipt.
type Request struct {
	Namespace     string     `json:"namespace"`
	Name          string     `json:"name"`
	Reason        string     `json:"reason"`
	Phase         string     `json:"phase"`
	Deadline      *time.Time `json:"deadline,omitempty"`
	OnTime        string     `json:"onTime,omitempty"`
	Completed     *time.Time `json:"completed,omitempty"`
	Rows          *int64     `json:"rows,omitempty"`
	ReceiptSHA256 string     `json:"receiptSHA256,omitempty"`
}

// Report is what `kubectl lethe report` shows.
type Report struct {
	Promises []Promise `json:"promises"`
	Requests []Request `json:"requests"`
}

// BuildReport reads the policies (their backlog and last run) and requests of ns
// ("" for all namespaces).
func BuildReport(ctx context.Context, c client.Reader, ns string) (*Report, error) {
	rep := &Report{Promises: []Promise{}, Requests: []Request{}}
	var policies retentionv1.RetentionPolicyList
	if err := c.List(ctx, &policies, client.InNamespace(ns)); err != nil {
		return nil, err
	}
	sort.Slice(policies.Items, func(i, j int) bool {
		a, b := policies.Items[i], policies.Items[j]
		return a.Namespace+"/"+a.Name < b.Namespace+"/"+b.Name
	})
	for i := range policies.Items {
		p := &policies.Items[i]
		run := p.Status.LastRun
		backlog := map[string]*retentionv1.RuleBacklog{}
		if b := p.Status.Backlog; b != nil {
			for i := range b.Rules {
				backlog[string(b.Rules[i].Rule)] = &b.Rules[i]
			}
		}
		for _, rule := range p.Spec.Rules {
			pr := Promise{Namespace: p.Namespace, Policy: p.Name, Rule: string(rule.Name), Action: string(rule.Action),
				OlderThan: string(rule.OlderThan), Mode: string(p.Spec.Mode)}
			if b := backlog[string(rule.Name)]; b != nil {
				n, at := b.Records, b.MeasuredTime.Time
				pr.PastRetention, pr.Held, pr.Accuracy, pr.MeasuredTime = &n, b.Held, string(b.Accuracy), &at
			}
			if run != nil {
				pr.LastRun, pr.LastResult = run.PurgeJob, string(run.Result)
				if run.ScheduledTime != nil {
					t := run.ScheduledTime.Time
					pr.LastRunTime = &t
				}
			}
			rep.Promises = append(rep.Promises, pr)
		}
	}
	var reqs retentionv1.DeletionRequestList
	if err := c.List(ctx, &reqs, client.InNamespace(ns)); err != nil {
		return nil, err
	}
	sort.Slice(reqs.Items, func(i, j int) bool {
		a, b := reqs.Items[i], reqs.Items[j]
		return a.Namespace+"/"+a.Name < b.Namespace+"/"+b.Name
	})
	for i := range reqs.Items {
		d := &reqs.Items[i]
		r := Request{Namespace: d.Namespace, Name: d.Name, Reason: string(d.Spec.Reason), Phase: string(d.Status.Phase)}
		if r.Phase == "" {
			r.Phase = string(retentionv1.RequestPending)
		}
		if t := d.Status.DeadlineTime; t != nil {
			tt := t.Time
			r.Deadline = &tt
		}
		if c := meta.FindStatusCondition(d.Status.Conditions, retentionv1.ConditionDeadlineMet); c != nil {
			r.OnTime = string(c.Status)
		}
		if t := d.Status.CompletionTime; t != nil {
			tt := t.Time
			r.Completed = &tt
		}
		if rc := d.Status.Receipt; rc != nil {
			r.ReceiptSHA256 = rc.SHA256
			var n int64
			for _, e := range rc.Entries {
				n += e.Rows
			}
			r.Rows = &n
		}
		rep.Requests = append(rep.Requests, r)
	}
	return rep, nil
}

func (o *Options) reportCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "report",
		Short: "The promises and how they are kept: per policy rule the period, records past it and the last run; per DeletionRequest its phase, deadline and receipt",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			now := o.Now()
			rep, err := BuildReport(o.ctx(cmd), o.client, o.listNamespace())
			if err != nil {
				return err
			}
			if ok, err := o.structured(rep); ok {
				return err
			}
			ns := func(cells []string, n string) []string {
				if o.AllNamespaces {
					return append([]string{n}, cells...)
				}
				return cells
			}
			header := func(h ...string) []string { return ns(h, "NAMESPACE") }
			fmt.Fprintln(o.Out, "RETENTION PROMISES")
			if len(rep.Promises) == 0 {
				fmt.Fprintf(o.Out, "No RetentionPolicies in %s.\n", o.where())
			} else {
				var rows [][]string
				for _, p := range rep.Promises {
					past := "<not counted>"
					if p.PastRetention != nil {
						past = strconv.FormatInt(*p.PastRetention, 10)
						if p.Held > 0 {
							past += fmt.Sprintf(" (+%d held)", p.Held)
						}
					}
					last := "<none>"
					if p.LastRun != "" {
						last = p.LastRun
						if p.LastRunTime != nil {
							last += " (" + when(p.LastRunTime, now) + ")"
						}
					}
					rows = append(rows, ns([]string{p.Policy, p.Rule, p.Action, p.OlderThan, p.Mode, past, last, orNone(p.LastResult)}, p.Namespace))
				}
				if err := table(o.Out, header("POLICY", "RULE", "ACTION", "OLDER THAN", "MODE", "PAST RETENTION", "LAST RUN", "RESULT"), rows); err != nil {
					return err
				}
			}
			fmt.Fprintln(o.Out)
			fmt.Fprintln(o.Out, "DELETION REQUESTS")
			if len(rep.Requests) == 0 {
				fmt.Fprintf(o.Out, "No DeletionRequests in %s.\n", o.where())
				return nil
			}
			var rows [][]string
			for _, r := range rep.Requests {
				deadline := "<none>"
				if r.Deadline != nil {
					deadline = r.Deadline.UTC().Format(time.RFC3339) + " (" + when(r.Deadline, now) + ")"
				}
				rowsErased := "<none>"
				if r.Rows != nil {
					rowsErased = strconv.FormatInt(*r.Rows, 10)
				}
				receipt := "<none>"
				if r.ReceiptSHA256 != "" {
					receipt = short(r.ReceiptSHA256)
				}
				rows = append(rows, ns([]string{r.Name, r.Reason, r.Phase, deadline, orNone(r.OnTime), rowsErased, receipt}, r.Namespace))
			}
			return table(o.Out, header("REQUEST", "REASON", "PHASE", "DEADLINE", "ON TIME", "ROWS", "RECEIPT"), rows)
		},
	}
	cmd.Flags().BoolVarP(&o.AllNamespaces, "all-namespaces", "A", false, "report on every namespace")
	return cmd
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}
