package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// GetConditions returns the status conditions.
func (o *ErasureReplay) GetConditions() []metav1.Condition { return o.Status.Conditions }

// SetConditions replaces the status conditions.
func (o *ErasureReplay) SetConditions(c []metav1.Condition) { o.Status.Conditions = c }
