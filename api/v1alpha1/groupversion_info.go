// Package v1alpha1 contains the API of Lethe, group retention.lethe.dev.
//
// Lethe enforces data-retention promises: DataStores say where personal data
// lives, Datasets map it, RetentionPolicies and DeletionRequests plan its
// erasure, LegalHolds keep it, and PurgeJobs execute and record what was done.
//
// +kubebuilder:object:generate=true
// +groupName=retention.lethe.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of every Lethe kind.
	GroupVersion = schema.GroupVersion{Group: "retention.lethe.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the Lethe kinds with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the Lethe kinds to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
