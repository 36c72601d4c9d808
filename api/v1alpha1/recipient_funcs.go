package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// GetConditions returns the status conditions.
func (o *Recipient) GetConditions() []metav1.Condition { return o.Status.Conditions }

// SetConditions replaces the status conditions.
func (o *Recipient) SetConditions(c []metav1.Condition) { o.Status.Conditions = c }

// Final reports whether the notice will not change any more.
func (s NoticeState) Final() bool { return s == NoticeAcknowledged || s == NoticeFailed }
