package controllers

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

// windowStatus shows whether the DataStore's spec.windows let purges run at
// now (status.window, nextWindow, windowClosesAt) and returns how long until
// that changes (0: never, or no windows), so the DataStore is looked at
// again then.
func windowStatus(ds *retentionv1.DataStore, now time.Time) time.Duration {
	ds.Status.Window, ds.Status.NextWindow, ds.Status.WindowClosesAt = "", nil, nil
	if len(ds.Spec.Windows) == 0 {
		return 0
	}
	set, err := storeWindows(ds)
	if err != nil {
		ds.Status.Window = retentionv1.WindowInvalid
		return 0
	}
	st := set.At(now)
	change := st.Opens
	if st.Open {
		ds.Status.Window = retentionv1.WindowOpen
		change = st.Closes
		if !st.Closes.IsZero() {
			t := metav1.NewTime(st.Closes)
			ds.Status.WindowClosesAt = &t
		}
	} else {
		ds.Status.Window = retentionv1.WindowClosed
		if !st.Opens.IsZero() {
			t := metav1.NewTime(st.Opens)
			ds.Status.NextWindow = &t
		}
	}
	if change.IsZero() {
		return 0
	}
	return max(change.Sub(now), time.Second)
}
