package engine

import (
	"fmt"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/erasure"
	"github.com/lethe-dev/lethe/internal/schedule"
)

// PolicyOperations plans one run of a RetentionPolicy scheduled at runAt: one
// operation per (rule, selected collection), each with its cutoff fixed as
// runAt minus the rule's olderThan, ordered children before parents along
// the Dataset's references. Errors wrap ErrInvalid and name the rule.
func PolicyOperations(p *retentionv1.RetentionPolicy, ds *retentionv1.Dataset, runAt time.Time) ([]retentionv1.Operation, error) {
	var ops []retentionv1.Operation
	for _, rule := range p.Spec.Rules {
		age, err := schedule.ParseRetention(string(rule.OlderThan))
		if err != nil {
			return nil, fmt.Errorf("%w: rule %s: %w", ErrInvalid, rule.Name, err)
		}
		at, err := age.Cutoff(runAt)
		if err != nil {
			return nil, fmt.Errorf("%w: rule %s: olderThan: %w", ErrInvalid, rule.Name, err)
		}
		cutoff := metav1.NewTime(at)
		selected, err := SelectCollections(ds, rule)
		if err != nil {
			return nil, err
		}
		for _, c := range selected {
			source := c.TimestampSource
			if source == "" && c.Prefix != "" {
				source = retentionv1.TimestampLastModified
			}
			if c.TimestampField == "" && !ageFromMetadata(string(source)) {
				return nil, fmt.Errorf("%w: rule %s selects collection %s, which has no timestampField to age its records by", ErrInvalid, rule.Name, c.Name)
			}
			op := retentionv1.Operation{Collection: c.Name, Action: rule.Action, ByAge: true, Cutoff: cutoff.DeepCopy(), Rule: rule.Name}
			if rule.Action == retentionv1.ActionAnonymize {
				if op.Fields = anonymizedFields(c, rule); len(op.Fields) == 0 {
					return nil, fmt.Errorf("%w: rule %s anonymizes collection %s, but none of its fields has an anonymize strategy; add one in the Dataset", ErrInvalid, rule.Name, c.Name)
				}
				if err := CheckFields(c, op.Fields); err != nil {
					return nil, fmt.Errorf("%w: rule %s: %w", ErrInvalid, rule.Name, err)
				}
				for _, f := range op.Fields {
					// Every run selects all records older than its cutoff,
					// including those anonymized by earlier runs; HMAC is the
					// one strategy that is not idempotent.
					if f.Strategy == retentionv1.StrategyHMAC {
						return nil, fmt.Errorf("%w: rule %s would anonymize %s.%s with HMAC on every run, hashing the hash again; use Null, Fixed, Redact, PartialMask or Generalize in a retention rule (HMAC is for erasure requests)", ErrInvalid, rule.Name, c.Name, f.Name)
					}
				}
			}
			ops = append(ops, op)
		}
	}
	return OrderChildrenFirst(ds, ops), nil
}

// CheckFields checks that every field an operation anonymizes is declared by
// the collection with an anonymize strategy, and that a Fixed replacement is
// the one the Dataset declares: a rule or a PurgeJob may choose among the
// declared fields (and a strategy for them), but never rewrite a column the
// Dataset does not declare, or write text of its own choosing into one.
func CheckFields(c *retentionv1.Collection, fields []retentionv1.FieldAnonymization) error {
	for _, f := range fields {
		i := slices.IndexFunc(c.Fields, func(d retentionv1.DataField) bool { return d.Name == f.Name })
		if i < 0 || c.Fields[i].Anonymize == nil {
			return fmt.Errorf("field %s.%s is not declared by the Dataset with an anonymize strategy; only declared fields may be anonymized", c.Name, f.Name)
		}
		declared := c.Fields[i].Anonymize
		if f.Strategy == retentionv1.StrategyFixed && (declared.Strategy != retentionv1.StrategyFixed || declared.Replacement == nil ||
			f.Replacement == nil || *f.Replacement != *declared.Replacement) {
			return fmt.Errorf("field %s.%s: strategy Fixed may only write the replacement the Dataset declares for it", c.Name, f.Name)
		}
	}
	return nil
}

// SelectCollections returns the collections a rule selects, by name or by
// category, in Dataset order.
func SelectCollections(ds *retentionv1.Dataset, rule retentionv1.RetentionRule) ([]*retentionv1.Collection, error) {
	for _, name := range rule.Collections {
		c, ok := Collection(ds, name)
		if !ok {
			return nil, fmt.Errorf("%w: rule %s selects collection %s, which Dataset %s does not declare", ErrInvalid, rule.Name, name, ds.Name)
		}
		if c.TraverseOnly {
			return nil, fmt.Errorf("%w: rule %s selects collection %s, which Dataset %s declares traverseOnly (never changed)", ErrInvalid, rule.Name, name, ds.Name)
		}
	}
	var out []*retentionv1.Collection
	for i := range ds.Spec.Collections {
		c := &ds.Spec.Collections[i]
		if c.TraverseOnly {
			continue // reached, never changed
		}
		if slices.Contains(rule.Collections, c.Name) || categoryMatch(c, rule.Categories) {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: rule %s selects no collection of Dataset %s (categories %v)", ErrInvalid, rule.Name, ds.Name, rule.Categories)
	}
	return out, nil
}

func categoryMatch(c *retentionv1.Collection, cats []retentionv1.Category) bool {
	for _, cat := range cats {
		if slices.Contains(c.Categories, cat) {
			return true
		}
		for _, f := range c.Fields {
			if slices.Contains(f.Categories, cat) {
				return true
			}
		}
	}
	return false
}

// anonymizedFields: the rule's own fields if it lists any; otherwise the
// Dataset's fields with a strategy — all of them when the collection is
// selected by name or by a collection-level category, only those of the
// rule's categories when selected through field categories.
func anonymizedFields(c *retentionv1.Collection, rule retentionv1.RetentionRule) []retentionv1.FieldAnonymization {
	if len(rule.Fields) > 0 {
		return rule.Fields
	}
	all := slices.Contains(rule.Collections, c.Name)
	for _, cat := range rule.Categories {
		all = all || slices.Contains(c.Categories, cat)
	}
	var out []retentionv1.FieldAnonymization
	for _, f := range c.Fields {
		if f.Anonymize == nil {
			continue
		}
		if all || slices.ContainsFunc(f.Categories, func(fc retentionv1.Category) bool { return slices.Contains(rule.Categories, fc) }) {
			out = append(out, retentionv1.FieldAnonymization{Name: f.Name, Anonymization: *f.Anonymize})
		}
	}
	return out
}

// OrderChildrenFirst orders operations children first (see
// erasure.OrderChildrenFirst).
func OrderChildrenFirst(ds *retentionv1.Dataset, ops []retentionv1.Operation) []retentionv1.Operation {
	return erasure.OrderChildrenFirst(ds, ops)
}
