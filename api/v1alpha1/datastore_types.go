package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DataStoreType is the kind of backing store.
// +kubebuilder:validation:Enum=PostgreSQL;MySQL;Redis;S3
type DataStoreType string

const (
	DataStorePostgreSQL DataStoreType = "PostgreSQL"
	// DataStoreMySQL covers MySQL and MariaDB.
	DataStoreMySQL DataStoreType = "MySQL"
	DataStoreRedis DataStoreType = "Redis"
	// DataStoreS3 covers any S3-compatible object storage.
	DataStoreS3 DataStoreType = "S3"
)

// TLSMode says how the connection is encrypted and whether the server's
// identity is verified before credentials are sent.
// +kubebuilder:validation:Enum=Disable;Require;VerifyFull
type TLSMode string

const (
	// TLSDisable: no TLS; credentials and data travel in clear. Insecure: the
	// DataStore shows TLSVerified=False (InsecureConnection).
	TLSDisable TLSMode = "Disable"
	// TLSRequire: TLS without verifying the server's certificate; whoever
	// answers at the address receives the credentials. Insecure: the
	// DataStore shows TLSVerified=False (InsecureConnection).
	TLSRequire TLSMode = "Require"
	// TLSVerifyFull (the default): TLS, with the server's certificate
	// verified against caBundleSecretRef (or the system's roots) and the host
	// name.
	TLSVerifyFull TLSMode = "VerifyFull"
)

// DataStoreSpec is the connection to one backing store and the limits Lethe
// keeps to when it works on it.
// +kubebuilder:validation:XValidation:rule="self.type != 'S3' || has(self.s3)",message="type S3 needs the s3 section (bucket)"
// +kubebuilder:validation:XValidation:rule="self.type == 'S3' || !has(self.s3)",message="the s3 section is only for type S3"
// +kubebuilder:validation:XValidation:rule="!(self.type in ['PostgreSQL', 'MySQL']) || has(self.database)",message="types PostgreSQL and MySQL need database"
// +kubebuilder:validation:XValidation:rule="self.type == 'S3' || has(self.host)",message="host is required for PostgreSQL, MySQL and Redis"
// +kubebuilder:validation:XValidation:rule="self.type != 'Redis' || !has(self.database)",message="Redis selects its database with redisDB, not database"
// +kubebuilder:validation:XValidation:rule="self.type != 'S3' || !has(self.database)",message="database is only for types PostgreSQL and MySQL"
// +kubebuilder:validation:XValidation:rule="self.type == 'Redis' || !has(self.redisDB)",message="redisDB is only for type Redis"
// +kubebuilder:validation:XValidation:rule="self.type != 'S3' || (!has(self.host) && !has(self.port))",message="host and port are not used by type S3: set s3.endpoint"
// +kubebuilder:validation:XValidation:rule="self.type != 'MySQL' || !has(self.database) || !(self.database.lowerAscii() in ['mysql', 'sys', 'performance_schema', 'information_schema'])",message="database must not be a system schema (mysql, sys, performance_schema, information_schema): Lethe never works on system catalogs"
// +kubebuilder:validation:XValidation:rule="!(has(self.s3) && has(self.s3.endpoint) && self.s3.endpoint.startsWith('http://')) || (has(self.tls) && self.tls == 'Disable')",message="an http:// S3 endpoint sends requests in clear: set tls: Disable to say so, or use https"
// +kubebuilder:validation:XValidation:rule="!has(self.caBundleSecretRef) || !has(self.tls) || self.tls == 'VerifyFull'",message="caBundleSecretRef is only used with tls VerifyFull"
// +kubebuilder:validation:XValidation:rule="self.type == 'MySQL' || !has(self.limits) || !has(self.limits.health) || ((!has(self.limits.health.replicas) || size(self.limits.health.replicas) == 0) && (!has(self.limits.health.maxThreadsRunning) || self.limits.health.maxThreadsRunning == 0))",message="limits.health.replicas and maxThreadsRunning are only for type MySQL"
// +kubebuilder:validation:XValidation:rule="self.type == 'PostgreSQL' || !has(self.limits) || !has(self.limits.health) || (!has(self.limits.health.maxReplicationLagBytes) && !has(self.limits.health.ignoredStandbys) && (!has(self.limits.health.maxActiveSessions) || self.limits.health.maxActiveSessions == 0) && (!has(self.limits.health.maxLockWaiters) || self.limits.health.maxLockWaiters == 0))",message="limits.health.maxReplicationLagBytes, ignoredStandbys, maxActiveSessions and maxLockWaiters are only for type PostgreSQL"
// +kubebuilder:validation:XValidation:rule="!(self.type in ['PostgreSQL', 'MySQL']) || has(self.credentialsSecretRef)",message="types PostgreSQL and MySQL need credentialsSecretRef (keys username and password): Lethe never logs in as its own operating-system user"
type DataStoreSpec struct {
	// Type of the store: PostgreSQL, MySQL (MySQL and MariaDB), Redis or S3
	// (any S3-compatible storage).
	// +required
	Type DataStoreType `json:"type"`

	// Host name or IP address of the server. Required except for S3, which uses
	// s3.endpoint (and must not set host or port).
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?$') || isIP(self)",message="must be a host name or IP address, without a port (the port goes in port)"
	Host string `json:"host,omitempty"`

	// Port of the server. Defaults to the store's standard port (5432, 3306,
	// 6379).
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port *int32 `json:"port,omitempty"`

	// Database to connect to (PostgreSQL and MySQL; for MySQL not one of the
	// system schemas mysql, sys, performance_schema, information_schema).
	// +optional
	Database Identifier `json:"database,omitempty"`

	// RedisDB is the logical Redis database number (default 0); type Redis
	// only.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=15
	RedisDB *int32 `json:"redisDB,omitempty"`

	// TLS mode of the connection, for every type: VerifyFull (default) uses
	// TLS and verifies the server's certificate against caBundleSecretRef (or
	// the system's roots) and host (for S3, the endpoint's host); credentials
	// are sent only to a verified server. Require uses TLS without verifying
	// the certificate and Disable uses no TLS: both send the credentials to
	// whoever answers at the address, and the DataStore shows the condition
	// TLSVerified=False with reason InsecureConnection. An http:// S3
	// endpoint needs Disable.
	// +optional
	TLS TLSMode `json:"tls,omitempty"`

	// CABundleSecretRef names the key of a Secret in the same namespace that
	// holds the PEM certificates of the certificate authorities the server's
	// certificate must chain to (for example key ca.crt), instead of the
	// system's roots. The Secret must carry the label
	// retention.lethe.dev/secret: "true". Only used with tls VerifyFull.
	// +optional
	CABundleSecretRef *SecretKeySelector `json:"caBundleSecretRef,omitempty"`

	// CredentialsSecretRef names a Secret in the same namespace holding the
	// credentials: keys username and password for PostgreSQL and MySQL
	// (both required; there is no fallback to the manager's own user) and
	// Redis (both optional), accessKeyID and secretAccessKey for S3 (both,
	// or no Secret for anonymous access). The Secret must carry the label
	// retention.lethe.dev/secret: "true"; a missing key leaves the DataStore
	// Stalled with reason InvalidSecret. Lethe reads only this Secret and
	// never logs or reports anything read from it. Required for PostgreSQL
	// and MySQL.
	// +optional
	CredentialsSecretRef *SecretReference `json:"credentialsSecretRef,omitempty"`

	// S3 holds the bucket settings of an S3-compatible store.
	// +optional
	S3 *S3Settings `json:"s3,omitempty"`

	// Limits bound the load Lethe puts on the store.
	// +optional
	// +kubebuilder:default={}
	Limits DataStoreLimits `json:"limits,omitempty"`

	// ProbeInterval is how often the connection is checked (default 5m).
	// +optional
	// +kubebuilder:default="5m"
	ProbeInterval Timeout `json:"probeInterval,omitempty"`

	// Windows are the times purges may run against this store, for example
	// every night from 01:00 to 05:00 in Europe/Berlin:
	// [{schedule: "0 1 * * *", duration: 4h, timeZone: Europe/Berlin}].
	// Windows that overlap or touch form one open period; no windows means
	// purges may run at any time. Outside every window a running PurgeJob
	// waits at its next batch boundary (its Throttled condition says
	// OutsideWindow and status.resumeAt when the next window opens) and a
	// PurgeJob that has not started waits before counting (counting reads
	// every expired record). Which PurgeJobs wait is windowsApplyTo. At most
	// 16 windows.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	Windows []PurgeWindow `json:"windows,omitempty"`

	// WindowsApplyTo says which PurgeJobs keep to windows: RetentionRuns
	// (the default) makes only RetentionPolicy runs wait, while the
	// erasures of DeletionRequests run at any time, since their legal
	// deadline matters more than the hour; All makes erasures wait too.
	// +optional
	WindowsApplyTo WindowsApplyTo `json:"windowsApplyTo,omitempty"`

	// Backups declares how long the store's backups keep data, so that a
	// completed DeletionRequest can say when the last backup holding the
	// erased subject expires (status.backupsExpireTime and the condition
	// BackupsExpired). Unset, Lethe cannot tell, and such a request's
	// BackupsExpired is Unknown (reason BackupRetentionUnknown); a store
	// without backups declares retention 0h.
	// +optional
	Backups *DataStoreBackups `json:"backups,omitempty"`
}

// DataStoreBackups says how long a store's backups are kept.
type DataStoreBackups struct {
	// Retention is how long a backup is kept before it is deleted (or
	// overwritten), as the backup schedule says: for example 30d or 6w; 0h
	// when the store keeps no backups. A record erased at time T is gone
	// from every backup at T + retention.
	// +required
	Retention WaitDuration `json:"retention"`
}

// WindowsApplyTo says which PurgeJobs keep to a DataStore's windows.
// +kubebuilder:validation:Enum=RetentionRuns;All
type WindowsApplyTo string

const (
	// WindowsApplyToRetentionRuns: only RetentionPolicy runs wait for a
	// window; DeletionRequest erasures run at any time (the default).
	WindowsApplyToRetentionRuns WindowsApplyTo = "RetentionRuns"
	// WindowsApplyToAll: every PurgeJob against the store waits for a window.
	WindowsApplyToAll WindowsApplyTo = "All"
)

// PurgeWindow is a recurring time when purges may run: it opens at every
// activation of schedule in timeZone and closes when the zone's clocks show
// the start plus duration (wall-clock time: "0 1 * * *" for 4h closes at
// 05:00 local time also on the nights the clocks change). A start that falls
// in the hour skipped when clocks go forward does not happen that day, as in
// a CronJob. A window may cross midnight.
type PurgeWindow struct {
	// Schedule is a cron expression of the window's start times, for
	// example "0 1 * * *" (01:00 every day) or "0 22 * * 6" (Saturdays at
	// 22:00).
	// +required
	Schedule CronSchedule `json:"schedule"`

	// Duration is how long the window stays open after each start, in hours
	// and minutes ("4h", "30m", "1h30m"), more than 0 and at most 7 days
	// (168h).
	// +required
	Duration WindowDuration `json:"duration"`

	// TimeZone of the schedule, an IANA name such as Europe/Berlin (default
	// UTC).
	// +optional
	// +kubebuilder:default=UTC
	TimeZone TimeZone `json:"timeZone,omitempty"`
}

// WindowDuration is a duration in whole hours and minutes, such as 4h, 30m
// or 1h30m: more than 0 and at most 168h (7 days).
// +kubebuilder:validation:MinLength=2
// +kubebuilder:validation:MaxLength=16
// +kubebuilder:validation:XValidation:rule="self.matches('^([1-9][0-9]{0,2}h)?([1-9][0-9]{0,3}m)?$') && duration(self) <= duration('168h')",message="must be hours and minutes such as 4h, 30m or 1h30m, more than 0 and at most 168h (7 days)"
type WindowDuration string

// S3Settings locate a bucket in S3-compatible storage.
type S3Settings struct {
	// Endpoint URL, for example https://s3.eu-central-1.amazonaws.com or
	// http://minio.storage:9000. Empty means AWS for the region.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:XValidation:rule="self.matches('^https?://[A-Za-z0-9.:-]+(/[A-Za-z0-9._~/-]*)?$')",message="must be an http or https URL without credentials"
	Endpoint string `json:"endpoint,omitempty"`

	// Region of the bucket (default us-east-1).
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9-]+$')",message="must be a region name such as eu-central-1"
	Region string `json:"region,omitempty"`

	// Bucket name.
	// +required
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9][a-z0-9.-]*[a-z0-9]$')",message="must be a valid bucket name"
	Bucket string `json:"bucket"`

	// ForcePathStyle addresses the bucket in the path rather than the host
	// name, as most self-hosted S3 servers need.
	// +optional
	ForcePathStyle bool `json:"forcePathStyle,omitempty"`
}

// DataStoreLimits bound the load Lethe puts on a store.
// +kubebuilder:validation:XValidation:rule="!has(self.minBatchSize) || !has(self.maxBatchSize) || self.minBatchSize <= self.maxBatchSize",message="minBatchSize must not be above maxBatchSize"
type DataStoreLimits struct {
	// MaxConnections is the largest number of connections Lethe opens to the
	// store at once (default 4).
	// +optional
	// +kubebuilder:default=4
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=64
	MaxConnections int32 `json:"maxConnections,omitempty"`

	// StatementTimeout bounds each statement (PostgreSQL statement_timeout,
	// MySQL max_execution_time; default 5s).
	// +optional
	// +kubebuilder:default="5s"
	StatementTimeout Timeout `json:"statementTimeout,omitempty"`

	// LockTimeout bounds waiting for row or table locks (PostgreSQL
	// lock_timeout, MySQL innodb_lock_wait_timeout; default 1s).
	// +optional
	// +kubebuilder:default="1s"
	LockTimeout Timeout `json:"lockTimeout,omitempty"`

	// MaxBatchesPerSecond throttles batches against this store; 0 means no
	// throttle.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10000
	MaxBatchesPerSecond int32 `json:"maxBatchesPerSecond,omitempty"`

	// Health pauses purges at a batch boundary while the store is unhealthy:
	// replication lag, active sessions, lock waiters (PostgreSQL), replica
	// lag and Threads_running (MySQL/MariaDB). See DataStoreHealth.
	// +optional
	// +kubebuilder:default={}
	Health DataStoreHealth `json:"health,omitempty"`

	// TargetBatchDuration is how long one batch transaction should last
	// when a PurgeJob leaves batchSize unset (default 200ms): each batch's
	// size follows the measured duration of the batches before it, growing
	// while they are well under the target and shrinking in proportion when
	// one is over it, within minBatchSize and maxBatchSize. Batches aim at
	// 20–75% of it, less the more the last 100 batches ran slower than
	// predicted, so that the slow ones stay within it. A shorter
	// target puts less load on the store at once (shorter locks, less
	// replication lag per batch) for some efficiency. At most 1m.
	// +optional
	// +kubebuilder:default="200ms"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^[0-9]{1,7}(ms|s|m)$') || (self.endsWith('ms') ? int(self.substring(0, size(self) - 2)) <= 60000 : self.endsWith('s') ? int(self.substring(0, size(self) - 1)) <= 60 : int(self.substring(0, size(self) - 1)) <= 1)",message="must be at most 1m"
	TargetBatchDuration Timeout `json:"targetBatchDuration,omitempty"`

	// MinBatchSize is the smallest adaptive batch, in records (default 100,
	// or maxBatchSize if that is smaller).
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100000
	MinBatchSize int32 `json:"minBatchSize,omitempty"`

	// MaxBatchSize is the largest adaptive batch, in records (default
	// 100000). A job's first batch on a collection is 1000 records (or
	// this, if smaller); later ones start at the size learned before. A
	// PurgeJob's explicit batchSize is used as it is.
	// +optional
	// +kubebuilder:default=100000
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100000
	MaxBatchSize int32 `json:"maxBatchSize,omitempty"`
}

// DataStoreStatus is the observed state of a DataStore.
type DataStoreStatus struct {
	// ObservedGeneration is the generation the status was computed for.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready (reasons Connected, ConnectionFailed, SecretNotFound,
	// SecretNotMarked, InvalidSecret, AuthenticationFailed, InUse while
	// deletion waits), Reconciling, Stalled, TLSVerified: True (reason
	// Verified) when the server's identity is verified, False (reason
	// InsecureConnection) when tls is Disable or Require, and Throttled:
	// True while the store's health (limits.health) holds purges back
	// (reasons ReplicationLag, ActiveSessions, LockWaiters, ThreadsRunning,
	// HealthUnknown, with the measured value and the limit), False (reason
	// Healthy) when the last reading was within every limit.
	// +optional
	// +listType=atomic
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// ServerVersion is the version the server reported at the last probe.
	// +optional
	ServerVersion string `json:"serverVersion,omitempty"`

	// LastProbeTime is when the connection was last checked.
	// +optional
	LastProbeTime *metav1.Time `json:"lastProbeTime,omitempty"`

	// Datasets is how many Datasets use this store.
	// +optional
	Datasets int32 `json:"datasets,omitempty"`

	// Window is whether spec.windows let purges run now: Open, Closed, or
	// Invalid (a window that can never open, such as "0 0 30 2 *"; PurgeJobs
	// that keep to windows wait until it is fixed). Empty without windows.
	// +optional
	Window WindowState `json:"window,omitempty"`

	// NextWindow is when the next window opens, while Window is Closed.
	// +optional
	NextWindow *metav1.Time `json:"nextWindow,omitempty"`

	// WindowClosesAt is when the open window closes (with the windows that
	// overlap it), while Window is Open.
	// +optional
	WindowClosesAt *metav1.Time `json:"windowClosesAt,omitempty"`
}

// WindowState is whether a DataStore's windows let purges run now.
// +kubebuilder:validation:Enum=Open;Closed;Invalid
type WindowState string

const (
	WindowOpen    WindowState = "Open"
	WindowClosed  WindowState = "Closed"
	WindowInvalid WindowState = "Invalid"
)

// DataStore is the connection to one backing store (PostgreSQL, MySQL/MariaDB,
// Redis or S3-compatible storage), with its credentials and load limits.
// Owned by the platform team.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=lds,categories=lethe
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.type`
// +kubebuilder:printcolumn:name="Host",type=string,JSONPath=`.spec.host`
// +kubebuilder:printcolumn:name="Version",type=string,JSONPath=`.status.serverVersion`,priority=1
// +kubebuilder:printcolumn:name="Datasets",type=integer,JSONPath=`.status.datasets`
// +kubebuilder:printcolumn:name="Window",type=string,JSONPath=`.status.window`
// +kubebuilder:printcolumn:name="Next Window",type=date,JSONPath=`.status.nextWindow`,priority=1
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type DataStore struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the desired connection and limits.
	// +required
	Spec DataStoreSpec `json:"spec"`

	// Status is the observed connection state.
	// +optional
	Status DataStoreStatus `json:"status,omitempty"`
}

// DataStoreList is a list of DataStores.
// +kubebuilder:object:root=true
type DataStoreList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []DataStore `json:"items"`
}

func init() {
	SchemeBuilder.Register(&DataStore{}, &DataStoreList{})
}
