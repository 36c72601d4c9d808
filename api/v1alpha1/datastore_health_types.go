package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/resource"
)

// LagLimit is a replication lag limit: a Go-style duration with one unit
// (ms, s or m, for example 500ms, 10s, 2m; at most 24 hours), or "0" for no
// limit.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=10
// +kubebuilder:validation:XValidation:rule="self == '0' || self.matches('^[1-9][0-9]{0,6}(ms|s|m)$')",message="must be 0 (no limit) or a positive duration with one unit: ms, s or m (for example 500ms, 10s, 2m)"
// +kubebuilder:validation:XValidation:rule="!self.matches('^[0-9]{1,7}(ms|s|m)$') || (self.endsWith('ms') ? int(self.substring(0, size(self) - 2)) <= 86400000 : self.endsWith('s') ? int(self.substring(0, size(self) - 1)) <= 86400 : int(self.substring(0, size(self) - 1)) <= 1440)",message="must be at most 24 hours: at most 1440m, 86400s or 86400000ms"
type LagLimit string

// DataStoreHealth throttles purges on the health of the store: before every
// batch a running PurgeJob asks whether the store is healthy, and while it
// is not the job waits at a batch boundary (never inside a transaction),
// with its Throttled condition, and the DataStore's, naming the measured
// value and the limit. The reading is taken at most once per checkInterval
// per DataStore and shared by every job on it. A store whose health cannot
// be read (a permission missing, a replica unreachable) is treated as
// unhealthy: jobs wait with reason HealthUnknown and a message that says
// what to grant. See docs/operations.md, "Throttling on the store's health".
// Redis and S3 stores have no health limits.
type DataStoreHealth struct {
	// CheckInterval is how often the store's health is read while jobs run
	// on it (default 250ms): a reading is cached for this long and shared by
	// every job on the store, so batches do not each cost a query. A
	// PostgreSQL standby whose lag grows is read again sooner: as soon as
	// its lag, growing at the rate measured, could reach maxReplicationLag
	// (at the next batch when it is close).
	// +optional
	// +kubebuilder:default="250ms"
	CheckInterval Timeout `json:"checkInterval,omitempty"`

	// MaxReplicationLag pauses purges while a replica lags more than this
	// (default 10s; "0" for no limit). PostgreSQL: every streaming standby
	// in the primary's pg_stat_replication (the manager's user needs
	// pg_monitor, or the lag columns read as NULL and jobs wait with
	// HealthUnknown), its lag taken as the largest of replay_lag, the age
	// of the oldest WAL it has not replayed, and the time its backlog needs
	// to replay at the slowest rate it kept over spans this long (in its
	// last 30s), plus the longest it was seen standing still. That last one
	// is a prediction (how late the WAL written now would be replayed) and
	// is kept within three quarters of this limit, to allow for a replay
	// rate that varies; a lag already there may reach all of it. See
	// maxReplicationLagBytes for a plain bound. MySQL/MariaDB:
	// Seconds_Behind_Master of each of
	// replicas, read on the replica (whole seconds); without replicas there
	// is nothing to check.
	// +optional
	// +kubebuilder:default="10s"
	MaxReplicationLag LagLimit `json:"maxReplicationLag,omitempty"`

	// MaxReplicationLagBytes pauses purges while a PostgreSQL standby has
	// not replayed this much of the primary's WAL
	// (pg_wal_lsn_diff(pg_current_wal_insert_lsn(), replay_lsn)); unlike
	// maxReplicationLag it sees a standby whose replay is paused or stuck.
	// Default 256Mi when unset; 0 for no limit. PostgreSQL only.
	// +optional
	MaxReplicationLagBytes *resource.Quantity `json:"maxReplicationLagBytes,omitempty"`

	// IgnoredStandbys are application_names of pg_stat_replication whose
	// lag is not checked: a deliberately delayed standby
	// (recovery_min_apply_delay) or a logical subscriber that may lag.
	// PostgreSQL only.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=63
	IgnoredStandbys []string `json:"ignoredStandbys,omitempty"`

	// MaxActiveSessions pauses purges while more sessions than this run a
	// statement (pg_stat_activity state 'active', client backends, Lethe's
	// own sessions not counted). Unset or 0: no limit (the right value
	// depends on the server's cores; about twice their number is a start).
	// PostgreSQL only.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100000
	MaxActiveSessions int32 `json:"maxActiveSessions,omitempty"`

	// MaxLockWaiters pauses purges while more sessions than this wait for a
	// lock (pg_stat_activity wait_event_type 'Lock', Lethe's own sessions
	// not counted). Unset or 0: no limit. PostgreSQL only.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100000
	MaxLockWaiters int32 `json:"maxLockWaiters,omitempty"`

	// MaxThreadsRunning pauses purges while the server's Threads_running
	// (SHOW GLOBAL STATUS, as pt-archiver's --max-load) is above this.
	// Unset or 0: no limit (about twice the server's cores is a start).
	// MySQL/MariaDB only.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100000
	MaxThreadsRunning int32 `json:"maxThreadsRunning,omitempty"`

	// Replicas are the MySQL/MariaDB replicas whose lag is checked, each
	// read on the replica itself (SHOW REPLICA STATUS or SHOW SLAVE STATUS,
	// as pt-archiver's --check-slave-lag): a replica whose SQL thread is
	// stopped, or that cannot be reached, pauses purges. Connections use the
	// DataStore's tls and caBundleSecretRef. MySQL/MariaDB only.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=8
	Replicas []MySQLReplica `json:"replicas,omitempty"`
}

// MySQLReplica is a MySQL/MariaDB replica whose lag is read on the replica.
type MySQLReplica struct {
	// Host name or IP address of the replica.
	// +required
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?$') || isIP(self)",message="must be a host name or IP address, without a port (the port goes in port)"
	Host string `json:"host"`

	// Port of the replica (default 3306).
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port *int32 `json:"port,omitempty"`

	// CredentialsSecretRef names a Secret in the same namespace with keys
	// username and password of an account on the replica that has
	// REPLICATION CLIENT (MySQL 8: REPLICATION CLIENT or REPLICA MONITOR;
	// MariaDB 10.5+: REPLICA MONITOR or SLAVE MONITOR). The Secret must carry
	// the label retention.lethe.dev/secret: "true". Default: the DataStore's
	// credentialsSecretRef.
	// +optional
	CredentialsSecretRef *SecretReference `json:"credentialsSecretRef,omitempty"`
}

// The Throttled condition of a DataStore: True while its health holds
// purges back (the reason and message as on the jobs' Throttled
// condition), False (reason Healthy) when the last reading was within every
// limit; absent until a job has read the store's health.
const (
	// ReasonHealthy: the last reading of the store's health was within
	// every limit.
	ReasonHealthy = "Healthy"
)
