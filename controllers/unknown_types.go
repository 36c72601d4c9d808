package controllers

import (
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datasetcheck"
)

// Identity types that no Dataset in scope declares match nothing: a typo, or
// phone_number where the Datasets say phone. They are reported, never
// silently ignored. Types are not personal data; values never appear.

// declaredTypes are the identity types the Datasets declare, in any
// collection's identities or as a {type} placeholder of a key pattern or
// prefix.
func declaredTypes(datasets []retentionv1.Dataset) map[string]bool {
	out := map[string]bool{}
	for i := range datasets {
		for _, c := range datasets[i].Spec.Collections {
			for _, id := range c.Identities {
				out[string(id.Type)] = true
			}
			for _, pattern := range []string{string(c.KeyPattern), string(c.Prefix)} {
				used, _ := datasetcheck.Placeholders(pattern)
				for _, t := range used {
					out[t] = true
				}
			}
		}
	}
	return out
}

// unknownTypes returns, sorted, the types of named that no Dataset declares.
func unknownTypes(named map[string]bool, datasets []retentionv1.Dataset) []string {
	declared := declaredTypes(datasets)
	var out []string
	for t := range named {
		if !declared[t] {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return out
}

// conditionedObject is a Lethe object: conditions, and events about it.
type conditionedObject interface {
	retentionv1.Object
	runtime.Object
}

// datasetNames lists the Datasets for a message.
func datasetNames(datasets []retentionv1.Dataset) string {
	if len(datasets) == 0 {
		return "no Dataset is in scope"
	}
	names := make([]string, len(datasets))
	for i := range datasets {
		names[i] = datasets[i].Name
	}
	return "Datasets in scope: " + strings.Join(names, ", ")
}

// markUnknownTypes sets or removes the UnknownIdentityTypes condition and
// raises a Warning event when the set of unknown types changes. It returns
// the unknown types and whether all the named ones are unknown.
func (r *Deps) markUnknownTypes(o conditionedObject, kind string, named map[string]bool, datasets []retentionv1.Dataset) (unknown []string, all bool) {
	unknown = unknownTypes(named, datasets)
	if len(unknown) == 0 {
		retentionv1.RemoveCondition(o, retentionv1.ConditionUnknownIdentityTypes)
		return nil, false
	}
	all = len(unknown) == len(named)
	msg := fmt.Sprintf("Identity types %s are declared by no Dataset in scope (%s); the %s matches nothing by them",
		strings.Join(unknown, ", "), datasetNames(datasets), kind)
	if all {
		msg = fmt.Sprintf("No Dataset in scope declares any identity type this %s names (%s; %s): check the types against the Datasets' identities",
			kind, strings.Join(unknown, ", "), datasetNames(datasets))
	}
	if c := meta.FindStatusCondition(o.GetConditions(), retentionv1.ConditionUnknownIdentityTypes); c == nil || c.Status != metav1.ConditionTrue || c.Message != msg {
		r.Recorder.Eventf(o, nil, "Warning", retentionv1.ReasonUnknownIdentityType, "Plan", "%s", msg)
	}
	retentionv1.SetCondition(o, retentionv1.ConditionUnknownIdentityTypes, metav1.ConditionTrue, retentionv1.ReasonUnknownIdentityType, msg)
	return unknown, all
}
