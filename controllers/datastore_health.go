package controllers

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/source"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/health"
	"github.com/lethe-dev/lethe/internal/metrics"
)

// healthStale is how old a DataStore's last health reading may be and
// still be shown: jobs read it every check interval while they run, so an
// older one means no job runs on the store and nothing is held back.
const healthStale = 2 * time.Minute

// watchHealth gives deps a health tracker (unless it has one) that counts
// throttled time in lethe_throttled_seconds_total and announces changes of
// verdict on the returned channel, for the DataStore controller.
func watchHealth(deps *Deps) <-chan event.GenericEvent {
	changes := make(chan event.GenericEvent, 256)
	if deps.Health == nil {
		deps.Health = &health.Tracker{}
	}
	deps.Health.OnThrottled = func(key types.NamespacedName, reason string, d time.Duration) {
		metrics.ThrottledSeconds.WithLabelValues(key.Namespace, key.Name, reason).Add(d.Seconds())
	}
	deps.Health.Notify = func(key types.NamespacedName) {
		select {
		case changes <- event.GenericEvent{Object: &retentionv1.DataStore{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}}:
		default: // full: the store reads the latest state when it reconciles
		}
	}
	return changes
}

// healthSource enqueues the DataStores the health tracker announces.
func healthSource(changes <-chan event.GenericEvent) source.Source {
	if changes == nil {
		changes = make(chan event.GenericEvent)
	}
	return source.Channel(changes, &handler.EnqueueRequestForObject{})
}

// markThrottled shows the store's last health reading in its Throttled
// condition: True with the reason and message of the jobs' Throttled
// condition while its health holds purges back, False (Healthy) when the
// last reading was within every limit. Without a recent reading (no job
// runs on the store) the condition is removed. It returns when to look
// again (0: no need).
func (r *DataStoreReconciler) markThrottled(ds *retentionv1.DataStore) time.Duration {
	st, ok := r.Health.State(types.NamespacedName{Namespace: ds.Namespace, Name: ds.Name})
	age := time.Since(st.At) // the tracker runs on real time, as the jobs' check intervals do
	if !ok || age > healthStale {
		retentionv1.RemoveCondition(ds, retentionv1.ConditionThrottled)
		return 0
	}
	if st.Healthy {
		retentionv1.SetCondition(ds, retentionv1.ConditionThrottled, metav1.ConditionFalse, retentionv1.ReasonHealthy, st.Message)
	} else {
		retentionv1.SetCondition(ds, retentionv1.ConditionThrottled, metav1.ConditionTrue, st.Reason, st.Message)
	}
	// Look again when the reading goes stale, so a store no job reads any
	// more does not keep showing it.
	return healthStale - age + time.Second
}
