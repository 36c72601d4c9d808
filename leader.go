package main

import (
	"flag"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
)

// leaderElection holds the leader-election flags. Only the leader runs the
// controllers; the other replicas keep their caches warm and take over when
// the leader's Lease (coordination.k8s.io, in namespace Namespace) is
// released or expires.
type leaderElection struct {
	Enabled   bool
	Namespace string
	// LeaseDuration is how long candidates wait after the last renewal they
	// saw before taking over from a leader that vanished (kill -9, node loss).
	LeaseDuration time.Duration
	// RenewDeadline is how long the leader keeps trying to renew before it
	// steps down; it must be shorter than LeaseDuration.
	RenewDeadline time.Duration
	// RetryPeriod is how often the leader renews and candidates try to
	// acquire (candidates wait 1 to 2.2 times this). A leader that stops on
	// SIGTERM releases the Lease, so a candidate takes over at its next try.
	RetryPeriod time.Duration
}

func (l *leaderElection) bindFlags(fs *flag.FlagSet) {
	fs.BoolVar(&l.Enabled, "leader-elect", true, "Elect a leader so that only one replica reconciles at a time.")
	fs.StringVar(&l.Namespace, "leader-election-namespace", "", "Namespace of the leader-election Lease; empty means the manager's own namespace, which only exists in a cluster: set it when the manager runs outside one.")
	fs.DurationVar(&l.LeaseDuration, "leader-election-lease-duration", 15*time.Second, "How long candidates wait after the leader's last renewal before taking over from a leader that vanished (killed, node lost).")
	fs.DurationVar(&l.RenewDeadline, "leader-election-renew-deadline", 10*time.Second, "How long the leader retries renewing its Lease before it steps down; shorter than the lease duration.")
	fs.DurationVar(&l.RetryPeriod, "leader-election-retry-period", 500*time.Millisecond, "How often the leader renews its Lease and candidates try to acquire it; a leader stopped by SIGTERM releases the Lease, so a candidate takes over within 2.2 times this.")
}

// apply sets the leader-election options of the manager. The Lease is
// released when the manager stops (SIGTERM): main exits right after
// mgr.Start returns, which is what LeaderElectionReleaseOnCancel requires.
func (l *leaderElection) apply(o *ctrl.Options) {
	o.LeaderElection = l.Enabled
	o.LeaderElectionID = "lethe.retention.lethe.dev"
	o.LeaderElectionNamespace = l.Namespace
	o.LeaderElectionReleaseOnCancel = true
	o.LeaseDuration, o.RenewDeadline, o.RetryPeriod = &l.LeaseDuration, &l.RenewDeadline, &l.RetryPeriod
}
