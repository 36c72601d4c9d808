package request

import (
	"context"
	"fmt"
	"slices"
	"sort"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/outcome"
)

// Datasets lists the Datasets the request covers (spec.scope: a label
// selector, names, or every Dataset of its namespace), sorted by name. An
// invalid selector is an outcome.Stall (InvalidSpec).
func (p *Planner) Datasets(ctx context.Context, dr *retentionv1.DeletionRequest) ([]retentionv1.Dataset, error) {
	var list retentionv1.DatasetList
	opts := []client.ListOption{client.InNamespace(dr.Namespace)}
	if s := dr.Spec.Scope; s != nil && s.Selector != nil {
		sel, err := metav1.LabelSelectorAsSelector(s.Selector)
		if err != nil {
			return nil, outcome.Stall(retentionv1.ReasonInvalidSpec, fmt.Sprintf("spec.scope.selector is not a valid label selector: %v", err))
		}
		opts = append(opts, client.MatchingLabelsSelector{Selector: sel})
	}
	if err := p.Client.List(ctx, &list, opts...); err != nil {
		return nil, err
	}
	out := list.Items
	if s := dr.Spec.Scope; s != nil && len(s.Datasets) > 0 {
		out = slices.DeleteFunc(out, func(d retentionv1.Dataset) bool { return !slices.Contains(s.Datasets, retentionv1.ObjectName(d.Name)) })
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Unvalidated names a Dataset whose current generation the Dataset
// controller has not yet checked against its live store ("" when all are):
// its foreign keys are unknown until then. A Dataset checked and found
// wanting (a missing table) counts as checked.
func Unvalidated(datasets []retentionv1.Dataset) string {
	for i := range datasets {
		ds := &datasets[i]
		c := meta.FindStatusCondition(ds.Status.Conditions, retentionv1.ConditionReady)
		if ds.Status.ObservedGeneration != ds.Generation || c == nil || c.ObservedGeneration != ds.Generation {
			return ds.Name
		}
		switch c.Reason {
		case retentionv1.ReasonValidated, retentionv1.ReasonCollectionNotFound, retentionv1.ReasonFieldNotFound, retentionv1.ReasonPrimaryKeyNotUnique, retentionv1.ReasonInvalidAnonymization, retentionv1.ReasonInvalidSpec, retentionv1.ReasonSecretNotFound:
		default:
			return ds.Name
		}
	}
	return ""
}

// Invalid names a validated Dataset that its validation found wanting (a
// missing table or column, an anonymization that cannot work), with the
// reason: an erasure planned on it could fail half-way or leave records
// identifying, so none starts ("" when all are Ready).
func Invalid(datasets []retentionv1.Dataset) (name, why string) {
	for i := range datasets {
		if c := meta.FindStatusCondition(datasets[i].Status.Conditions, retentionv1.ConditionReady); c != nil && c.Status != metav1.ConditionTrue {
			return datasets[i].Name, c.Reason + ": " + c.Message
		}
	}
	return "", ""
}

// ApprovalRequiredBy names the planned Datasets that require approval for
// every erasure (spec.requireApproval), sorted.
func ApprovalRequiredBy(datasets []retentionv1.Dataset, plan []retentionv1.PlannedCollection) []string {
	var names []string
	for _, ds := range datasets {
		if ds.Spec.RequireApproval && slices.ContainsFunc(plan, func(p retentionv1.PlannedCollection) bool { return p.Dataset == ds.Name }) {
			names = append(names, ds.Name)
		}
	}
	slices.Sort(names)
	return names
}

// dataset finds a Dataset by name (an empty one when there is none).
func dataset(all []retentionv1.Dataset, name string) *retentionv1.Dataset {
	for i := range all {
		if all[i].Name == name {
			return &all[i]
		}
	}
	return &retentionv1.Dataset{}
}
