// Package backlog counts what an auditor asks of a RetentionPolicy: per
// rule, how many records are past their retention period now, how many of
// them legal holds keep, and whether the last run left any record it should
// have deleted or anonymized (docs/design.md §9).
//
// Counts come from the drivers' Count (internal/datastore), each rule's
// cutoff computed at measurement time. Nothing here reads a record's
// content: the results are numbers, rule and collection names.
package backlog

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/engine"
)

// Target is one (rule, collection) operation of a policy, resolved for the
// driver with the rule's cutoff at measurement time and the legal holds in
// force (engine.Resolve of engine.PolicyOperations).
type Target struct {
	Rule      string
	Anonymize bool
	Step      engine.Step
	// Since (Anonymize rules) is the cutoff of the policy's last successful
	// Enforce run of the rule: records dated before it were anonymized by
	// that run and are not counted. nil counts every record past retention.
	Since *time.Time
}

// Collection is the backlog of a rule in one collection.
type Collection struct {
	Name    string
	Records int64 // past retention, not held
	Held    int64 // past retention, kept by legal holds
}

// Rule is the backlog of one rule.
type Rule struct {
	Name      string
	Cutoff    time.Time
	Estimated bool
	Since     *time.Time
	Records   int64
	Held      int64
	// Collections in the order of the targets.
	Collections []Collection
}

// Measurement is one count of a policy's backlog.
type Measurement struct {
	At    time.Time
	Rules []Rule // in the order of the targets' first appearance
}

// Measure counts the targets' backlog at at. Per target: the records its
// operation selects (holds excluded) and, when holds reach the collection,
// the same without them (the difference is held). A collection a hold
// keeps whole (Step.BlockedBy) has no backlog: everything past retention
// is held. For an Anonymize rule with Since, the records older than Since
// (holds excluded) are subtracted, and the count is an estimate.
func Measure(ctx context.Context, d datastore.Driver, at time.Time, targets []Target) (Measurement, error) {
	m := Measurement{At: at}
	for _, t := range targets {
		i := slices.IndexFunc(m.Rules, func(r Rule) bool { return r.Name == t.Rule })
		if i < 0 {
			r := Rule{Name: t.Rule, Estimated: t.Anonymize}
			if t.Step.Op.Cutoff != nil {
				r.Cutoff = *t.Step.Op.Cutoff
			}
			if t.Anonymize && t.Since != nil {
				since := *t.Since
				r.Since = &since
			}
			m.Rules = append(m.Rules, r)
			i = len(m.Rules) - 1
		}
		c, err := measure(ctx, d, t)
		if err != nil {
			return Measurement{}, fmt.Errorf("counting the backlog of rule %s in collection %s: %w", t.Rule, t.Step.Op.Collection.Name, err)
		}
		r := &m.Rules[i]
		r.Records += c.Records
		r.Held += c.Held
		r.Collections = append(r.Collections, c)
	}
	return m, nil
}

func measure(ctx context.Context, d datastore.Driver, t Target) (Collection, error) {
	op := t.Step.Op
	c := Collection{Name: op.Collection.Name}
	free := op // without the holds' exclusions
	free.Held, free.HeldPaths = nil, nil
	var kept int64 // selected with the holds excluded
	if t.Step.BlockedBy == "" {
		n, err := d.Count(ctx, op)
		if err != nil {
			return c, err
		}
		kept = n
	}
	if t.Step.BlockedBy != "" || len(op.Held) > 0 {
		all, err := d.Count(ctx, free)
		if err != nil {
			return c, err
		}
		c.Held = max(all-kept, 0)
	}
	if t.Anonymize && t.Since != nil && kept > 0 {
		if op.Cutoff == nil || !t.Since.Before(*op.Cutoff) {
			kept = 0 // the last run's cutoff is at or after today's
		} else {
			older := op
			since := *t.Since
			older.Cutoff = &since
			n, err := d.Count(ctx, older)
			if err != nil {
				return c, err
			}
			kept = max(kept-n, 0)
		}
	}
	c.Records = kept
	return c, nil
}

// AfterRun counts what a finished run left that it should have changed,
// per rule and collection, legal holds excluded. steps are the run's own
// operations resolved (engine.Resolve of the PurgeJob: its cutoffs, the
// holds in force now), in spec order. A Delete operation is counted in the
// store at the run's cutoff, so records that aged past retention while it
// ran are not held against it; an Anonymize operation cannot be counted so
// (anonymized records stay in the store), and is taken from the run's own
// counts, matched minus anonymized (a failed run that never counted the
// operation: every record older than its cutoff, an upper bound). An
// operation a hold kept whole leaves nothing.
func AfterRun(ctx context.Context, d datastore.Driver, job *retentionv1.PurgeJob, steps []engine.Step) (map[string]map[string]int64, error) {
	if len(steps) != len(job.Spec.Operations) {
		return nil, fmt.Errorf("run %s: %d resolved steps for %d operations", job.Name, len(steps), len(job.Spec.Operations))
	}
	out := map[string]map[string]int64{}
	for i, op := range job.Spec.Operations {
		rule, coll := string(op.Rule), string(op.Collection)
		if out[rule] == nil {
			out[rule] = map[string]int64{}
		}
		var left int64
		switch {
		case steps[i].BlockedBy != "":
		case op.Action == retentionv1.ActionDelete:
			n, err := d.Count(ctx, steps[i].Op)
			if err != nil {
				return nil, fmt.Errorf("counting what run %s left in collection %s: %w", job.Name, coll, err)
			}
			left = n
		case i < len(job.Status.Operations) && (job.Status.Operations[i].Matched > 0 || job.Status.Operations[i].Phase == retentionv1.PurgeJobSucceeded):
			s := job.Status.Operations[i]
			left = max(s.Matched-s.Deleted-s.Anonymized, 0)
		case job.Status.Phase == retentionv1.PurgeJobFailed:
			// Failed before counting this operation: everything older than
			// its cutoff is left, at most (records anonymized by earlier
			// runs are in this count too).
			n, err := d.Count(ctx, steps[i].Op)
			if err != nil {
				return nil, fmt.Errorf("counting what run %s left in collection %s: %w", job.Name, coll, err)
			}
			left = n
		}
		out[rule][coll] += left
	}
	return out, nil
}

// AnonymizedBefore returns, per Anonymize rule, the cutoff of the newest
// successful Enforce run among jobs, or the one recorded in prev (the
// status so far) when it is later: records older than it were anonymized.
func AnonymizedBefore(jobs []retentionv1.PurgeJob, prev *retentionv1.Backlog) map[string]time.Time {
	out := map[string]time.Time{}
	if prev != nil {
		for _, r := range prev.Rules {
			if r.AnonymizedBefore != nil {
				out[string(r.Rule)] = r.AnonymizedBefore.UTC()
			}
		}
	}
	for i := range jobs {
		j := &jobs[i]
		if j.Status.Phase != retentionv1.PurgeJobSucceeded || j.Spec.Mode != retentionv1.ModeEnforce {
			continue
		}
		for k, op := range j.Spec.Operations {
			if op.Action != retentionv1.ActionAnonymize || op.Rule == "" || op.Cutoff == nil {
				continue
			}
			if k < len(j.Status.Operations) && j.Status.Operations[k].Phase == retentionv1.OperationHeld {
				continue // kept whole by a hold: not anonymized
			}
			if at := op.Cutoff.UTC(); at.After(out[string(op.Rule)]) {
				out[string(op.Rule)] = at
			}
		}
	}
	return out
}

// Status builds status.backlog from a measurement and, when afterRun is
// set, what the run named run left (AfterRun).
func Status(m Measurement, run string, afterRun map[string]map[string]int64) *retentionv1.Backlog {
	at := metav1.NewTime(m.At.UTC())
	b := &retentionv1.Backlog{MeasuredTime: at}
	if afterRun != nil {
		b.AfterRun = run
	}
	for _, r := range m.Rules {
		rb := retentionv1.RuleBacklog{
			Rule: retentionv1.Identifier(r.Name), Records: r.Records, Held: r.Held,
			Accuracy: retentionv1.BacklogExact, MeasuredTime: at, Cutoff: metav1.NewTime(r.Cutoff.UTC()),
		}
		if r.Estimated {
			rb.Accuracy = retentionv1.BacklogEstimated
		}
		if r.Since != nil {
			t := metav1.NewTime(r.Since.UTC())
			rb.AnonymizedBefore = &t
		}
		left, counted := afterRun[r.Name]
		var total int64
		for _, c := range r.Collections {
			cb := retentionv1.CollectionBacklog{Collection: retentionv1.Identifier(c.Name), Records: c.Records, Held: c.Held}
			if counted {
				n := left[c.Name]
				cb.RemainingAfterRun = &n
				total += n
			}
			rb.Collections = append(rb.Collections, cb)
		}
		if counted {
			rb.RemainingAfterRun = &total
		}
		b.Records += r.Records
		b.Held += r.Held
		b.Rules = append(b.Rules, rb)
	}
	return b
}

// Carry keeps what the previous status knew after the last run (afterRun
// and the counts it left) in a new status measured on the interval, for the
// rules and collections both know.
func Carry(next, prev *retentionv1.Backlog) {
	if prev == nil || prev.AfterRun == "" || next.AfterRun != "" {
		return
	}
	next.AfterRun = prev.AfterRun
	for i := range next.Rules {
		r := &next.Rules[i]
		j := slices.IndexFunc(prev.Rules, func(p retentionv1.RuleBacklog) bool { return p.Rule == r.Rule })
		if j < 0 {
			continue
		}
		if p := prev.Rules[j].RemainingAfterRun; p != nil {
			n := *p
			r.RemainingAfterRun = &n
		}
		for k := range r.Collections {
			c := &r.Collections[k]
			l := slices.IndexFunc(prev.Rules[j].Collections, func(p retentionv1.CollectionBacklog) bool { return p.Collection == c.Collection })
			if l >= 0 && prev.Rules[j].Collections[l].RemainingAfterRun != nil {
				n := *prev.Rules[j].Collections[l].RemainingAfterRun
				c.RemainingAfterRun = &n
			}
		}
	}
}

// Condition is the BacklogCleared condition for a status: Unknown before a
// run was counted (NotMeasured) or when the run was a dry run (DryRun);
// otherwise True when every rule's remainingAfterRun is zero, False
// (BacklogRemaining) naming the rules, counts and collections.
func Condition(b *retentionv1.Backlog, dryRun bool) (metav1.ConditionStatus, string, string) {
	if b == nil || b.AfterRun == "" {
		return metav1.ConditionUnknown, retentionv1.ReasonBacklogNotMeasured, "No finished run has been counted yet"
	}
	if dryRun {
		return metav1.ConditionUnknown, retentionv1.ReasonBacklogDryRun, fmt.Sprintf(
			"Run %s was a dry run, which changes nothing; %d records are past their retention period%s", b.AfterRun, b.Records, heldSuffix(b.Held))
	}
	var remaining []string
	for _, r := range b.Rules {
		if r.RemainingAfterRun == nil || *r.RemainingAfterRun == 0 {
			continue
		}
		var where []string
		for _, c := range r.Collections {
			if c.RemainingAfterRun != nil && *c.RemainingAfterRun > 0 {
				where = append(where, fmt.Sprintf("%s %d", c.Collection, *c.RemainingAfterRun))
			}
		}
		remaining = append(remaining, fmt.Sprintf("rule %s: %d (%s)", r.Rule, *r.RemainingAfterRun, strings.Join(where, ", ")))
	}
	if len(remaining) > 0 {
		return metav1.ConditionFalse, retentionv1.ReasonBacklogRemaining, fmt.Sprintf(
			"After run %s, records past their retention period remain (legal holds excluded): %s", b.AfterRun, strings.Join(remaining, "; "))
	}
	return metav1.ConditionTrue, retentionv1.ReasonBacklogCleared, fmt.Sprintf(
		"After run %s no record past its retention period remained%s", b.AfterRun, heldSuffix(b.Held))
}

func heldSuffix(held int64) string {
	if held == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d kept by legal holds)", held)
}

// Interval parses spec.backlogInterval: "" is the default (10m); zero
// means only after runs.
func Interval(s retentionv1.BacklogInterval) (time.Duration, error) {
	if s == "" {
		s = retentionv1.DefaultBacklogInterval
	}
	d, err := time.ParseDuration(string(s))
	if err != nil || d < 0 || (d > 0 && d < time.Minute) || d > 168*time.Hour {
		return 0, fmt.Errorf("backlogInterval %q: must be 0s or from 1m to 168h", s)
	}
	return d, nil
}

// Due says whether the backlog must be counted now: never counted, a run
// (last, newest first) finished that was not counted after, or the
// interval passed since the last count. wait is how long until the next
// count on the interval (0: none scheduled). afterRun says whether last
// is to be counted after.
func Due(b *retentionv1.Backlog, last *retentionv1.PurgeJob, interval time.Duration, now time.Time) (due, afterRun bool, wait time.Duration) {
	if last != nil && (last.Status.Phase == retentionv1.PurgeJobSucceeded || last.Status.Phase == retentionv1.PurgeJobFailed) &&
		(b == nil || b.AfterRun != last.Name) {
		return true, true, interval
	}
	if b == nil {
		return true, false, interval
	}
	if interval == 0 {
		return false, false, 0
	}
	next := b.MeasuredTime.Add(interval)
	if !now.Before(next) {
		return true, false, interval
	}
	return false, false, next.Sub(now)
}

// SameRules reports whether a status counted exactly the policy's rules.
func SameRules(b *retentionv1.Backlog, p *retentionv1.RetentionPolicy) bool {
	if len(b.Rules) != len(p.Spec.Rules) {
		return false
	}
	for _, r := range p.Spec.Rules {
		if !slices.ContainsFunc(b.Rules, func(c retentionv1.RuleBacklog) bool { return c.Rule == r.Name }) {
			return false
		}
	}
	return true
}
