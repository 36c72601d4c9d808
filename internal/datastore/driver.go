// Package datastore is the contract between Lethe's execution engine and the
// stores it works on. One package per store (postgres, mysql, redis, s3)
// implements Driver; package all opens the right one for a DataStore.
//
// The contract is batch-oriented: the engine fixes an Operation (collection,
// action, cutoff, subjects, held identities) once per PurgeJob and then calls
// Execute repeatedly, each call one bounded batch in its own short transaction,
// persisting the returned cursor between calls. A restarted engine passes the
// last persisted cursor back and the driver continues exactly there.
package datastore

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/internal/mask"
)

// Config is a resolved connection: the DataStore's spec with its Secret read.
// It is never logged (String redacts credentials).
type Config struct {
	Type     string // PostgreSQL, MySQL, Redis or S3
	Host     string
	Port     int
	Database string
	RedisDB  int
	TLS      string // Disable, Require or VerifyFull (the default when empty); see ClientTLS
	// CABundle holds PEM certificates the server's certificate must chain
	// to with VerifyFull; empty means the system's roots.
	CABundle []byte

	Username string
	Password string

	S3Endpoint        string
	S3Region          string
	S3Bucket          string
	S3AccessKeyID     string
	S3SecretAccessKey string
	S3ForcePathStyle  bool

	MaxConnections   int
	StatementTimeout time.Duration
	LockTimeout      time.Duration

	// Network is the manager's network policy every connection goes
	// through (DialContext); nil means DefaultNetworkPolicy.
	Network *NetworkPolicy
}

// String describes the connection without credentials.
func (c Config) String() string {
	if c.Type == "S3" {
		return fmt.Sprintf("%s bucket %s at %s", c.Type, c.S3Bucket, c.S3Endpoint)
	}
	return fmt.Sprintf("%s %s:%d/%s", c.Type, c.Host, c.Port, c.Database)
}

// ServerInfo is what a probe learns.
type ServerInfo struct {
	Version string
}

// Collection is a collection resolved for a driver: where it is, how records
// are dated and identified.
type Collection struct {
	Name string // logical name in the Dataset

	// SQL stores.
	Schema     string   // PostgreSQL schema (default public); ignored by MySQL
	Table      string   // table name
	PrimaryKey []string // keyset columns; discovered by Describe when empty

	// Redis and S3: key pattern or prefix with {identity_type} placeholders.
	Pattern string

	// TimestampField dates a record (SQL column or Redis hash field);
	// TimestampSource says how (Column, HashField, SortedSetScore, StreamID,
	// IdleTime, LastModified).
	TimestampField  string
	TimestampSource string
	// TimestampLocation interprets timestamp columns without a time zone
	// (PostgreSQL timestamp, MySQL datetime) as wall-clock time in this zone.
	// nil means UTC.
	TimestampLocation *time.Location

	// IdentityFields maps an identity type (user_id, email…) to the field
	// holding it directly.
	IdentityFields map[string]string
}

// Hop is one step from a collection towards a collection that holds the
// subject's identity directly: this collection's Field refers to
// Parent.ParentField.
type Hop struct {
	Field       string
	Parent      Collection
	ParentField string
}

// FieldMask anonymizes one field.
type FieldMask struct {
	Field    string
	Strategy mask.Strategy
}

// Operation is one concrete operation, fixed for the whole PurgeJob.
type Operation struct {
	Collection Collection
	Delete     bool // true: delete; false: anonymize Fields

	// Cutoff, when set, selects records dated strictly before it.
	Cutoff *time.Time

	// Subjects, when set, selects the records of these subjects: identity
	// type → values, matched in this collection's own identity fields and,
	// through each path of Paths, at the path's end. A record is selected
	// when any of them matches (the union of every path).
	Subjects map[string][]string
	Paths    [][]Hop

	// Keys are primary-key tuples (as text, in primary-key order) sealed
	// before the first change: with Subjects set, a record whose key is
	// listed is selected too, so an erasure resumed after the records that
	// linked it to the subject changed still reaches it.
	Keys [][]string

	// Held identities (identity type → values) are excluded inside the
	// statement itself: matched in this collection's own identity fields and
	// at the end of each path of HeldPaths.
	Held      map[string][]string
	HeldPaths [][]Hop

	// Fields anonymized when Delete is false.
	Fields []FieldMask

	// BatchSize bounds the records touched by one Execute call.
	BatchSize int
}

// Batch is the result of one Execute call.
type Batch struct {
	// Affected is how many records were deleted or anonymized.
	Affected int64
	// Cursor is where the next call continues; persist it after the call.
	Cursor string
	// Done is true when nothing is left to do.
	Done bool
	// PartitionsDropped counts partitions dropped whole in this call.
	PartitionsDropped int
}

// Driver works on one store. Implementations are safe for concurrent use.
type Driver interface {
	// Probe checks reachability and credentials and reports the version.
	Probe(ctx context.Context) (ServerInfo, error)

	// Describe checks that a collection exists and fills in what the store
	// knows of it (primary key, columns, foreign keys, partitions, estimate).
	Describe(ctx context.Context, c Collection) (CollectionInfo, error)

	// Count returns how many records the operation would touch now (dry run,
	// safety limits). On static data it equals what executing would affect.
	Count(ctx context.Context, op Operation) (int64, error)

	// Total returns how many records the collection holds (for percentage
	// limits).
	Total(ctx context.Context, c Collection) (int64, error)

	// Execute runs one bounded batch of the operation, continuing from cursor
	// ("" to start), in its own short transaction.
	Execute(ctx context.Context, op Operation, cursor string) (Batch, error)

	// Close releases connections.
	Close() error
}

// CollectionInfo is what Describe learns of a live collection.
type CollectionInfo struct {
	Columns    map[string]Column
	PrimaryKey []string
	// UniqueKeys are the column lists of the plain unique indexes (not
	// partial, no expression), the primary key first when there is one.
	UniqueKeys    [][]string
	ForeignKeys   []ForeignKey
	Partitioned   bool
	EstimatedRows int64
	// KeyTypes (Redis) counts the types (hash, string, zset, stream…) of
	// the keys Describe sampled.
	KeyTypes map[string]int64
}

// Column is one column of a table.
type Column struct {
	Name      string
	Type      string // the store's type name, lowercased (text, varchar, timestamptz…)
	MaxLength int    // character limit; 0 when unlimited
	Nullable  bool
	// Unique: the column is part of a primary key or unique index (a
	// partial one too), so anonymizing it could collide.
	Unique bool
	// Mask is what anonymization strategies need to know of the column.
	Mask mask.Column
}

// ForeignKey says Columns of this table refer to RefColumns of RefTable.
type ForeignKey struct {
	Name       string
	Columns    []string
	RefSchema  string
	RefTable   string
	RefColumns []string
}

// KeysNotNull returns the unique keys whose columns are all NOT NULL: the
// keys no two records share (NULLs may repeat in a unique index).
func (i CollectionInfo) KeysNotNull() [][]string {
	var out [][]string
	for _, key := range i.UniqueKeys {
		ok := len(key) > 0
		for _, c := range key {
			col, found := i.Columns[c]
			ok = ok && found && !col.Nullable
		}
		if ok {
			out = append(out, key)
		}
	}
	return out
}

// CoversUniqueKey reports whether the columns of a declared primary key
// include every column of one of the unique keys, so that no two records
// share a value of the declared key. foldCase compares names
// case-insensitively (MySQL column names).
func CoversUniqueKey(declared []string, unique [][]string, foldCase bool) bool {
	has := map[string]bool{}
	for _, c := range declared {
		if foldCase {
			c = strings.ToLower(c)
		}
		has[c] = true
	}
	for _, key := range unique {
		covered := len(key) > 0
		for _, c := range key {
			if foldCase {
				c = strings.ToLower(c)
			}
			covered = covered && has[c]
		}
		if covered {
			return true
		}
	}
	return false
}

// Sealer is implemented by stores whose records have primary keys (SQL).
type Sealer interface {
	// Keys returns the primary keys (as text, in key order) of the records
	// the operation selects now, at most limit of them; more is an error
	// wrapping ErrInvalid.
	Keys(ctx context.Context, op Operation, limit int) ([][]string, error)
}

// Blocker is a foreign key whose referencing records would be left
// pointing at records an erasure deletes.
type Blocker struct {
	// Collection is the collection of the deleting operation.
	Collection string
	// Constraint, Table and Columns name the foreign key and the table
	// holding it (any table of the store, declared in the Dataset or not).
	Constraint string
	Table      string
	Columns    []string
	// OnDelete is the key's action: NO ACTION, RESTRICT, CASCADE, SET NULL
	// or SET DEFAULT.
	OnDelete string
	// Rows is how many referencing records would be left.
	Rows int64
}

// LeavesNoReference reports whether op leaves none of the rows it selects
// referring through cols: it deletes them, or anonymizes every one of cols
// to NULL. same compares column names as the store does.
func LeavesNoReference(op Operation, cols []string, same func(a, b string) bool) bool {
	if op.Delete {
		return true
	}
	for _, c := range cols {
		if !slices.ContainsFunc(op.Fields, func(f FieldMask) bool { return same(f.Field, c) && f.Strategy.Kind == mask.Null }) {
			return false
		}
	}
	return len(cols) > 0
}

// Referrers is implemented by stores with foreign keys (SQL).
type Referrers interface {
	// Blockers checks, for every Delete operation of ops, every foreign key
	// of the store that refers to its table: it counts the referencing
	// records that refer to a record the operation deletes and that no
	// Delete operation of ops removes (and no Anonymize operation of ops
	// sets to NULL), and returns the keys where that count is not zero.
	// It changes nothing.
	Blockers(ctx context.Context, ops []Operation) ([]Blocker, error)
}

// HealthQuery says what a HealthReader reads; a part not asked for is
// not read (and needs no privilege).
type HealthQuery struct {
	// Replication: the lag of the primary's standbys (PostgreSQL
	// pg_stat_replication), except those whose application_name is in
	// IgnoredStandbys.
	Replication     bool
	IgnoredStandbys []string
	// LagLimit is the replication lag the caller will allow (0: none): a
	// PostgreSQL standby's replay rate is taken as the slowest it kept over
	// spans this long, the time its backlog may take to replay.
	LagLimit time.Duration
	// Sessions: active sessions and lock waiters (PostgreSQL
	// pg_stat_activity), the driver's own sessions not counted.
	Sessions bool
	// ThreadsRunning: MySQL's Threads_running.
	ThreadsRunning bool
	// Replicas are MySQL/MariaDB replicas whose lag is read on each of them
	// (Host, Port, Username and Password; the rest of the driver's Config,
	// TLS and network policy, applies).
	Replicas []Config
}

// ReplicaHealth is the lag of one standby or replica.
type ReplicaHealth struct {
	// Name says which: a standby's application_name (and address), a
	// replica's host:port. Never personal data.
	Name string
	// Lag is how far replay is behind in time; LagKnown is false when the
	// store does not say (PostgreSQL: replay_lag is NULL once an idle
	// standby has caught up).
	Lag      time.Duration
	LagKnown bool
	// Predicted: Lag is not a lag already there but how late the WAL
	// written now is expected to be replayed (PostgreSQL: the backlog at
	// the replay rate seen, plus the standby's standstills).
	Predicted bool
	// LagBytes is how much of the primary's WAL the standby has not
	// replayed (PostgreSQL); BytesKnown is false when not read.
	LagBytes   int64
	BytesKnown bool
	// LagGrowth is how many seconds of lag the replica gains per second
	// while the primary writes at its recent peak rate (PostgreSQL: that
	// rate over the standby's replay rate, minus one); 0 when not known or
	// when the replica keeps up. It lets the health gate read again before
	// the lag can reach its limit rather than a whole check interval later.
	// GrowthKnown says whether it was measured (a replica that keeps up:
	// known, 0).
	LagGrowth   float64
	GrowthKnown bool
	// Stopped: the replica does not replicate (MySQL: Seconds_Behind_Master
	// is NULL, a replication thread is stopped).
	Stopped bool
	// Problem, when set, is why this replica's health could not be read and
	// what to grant, in Lethe's own words (never a server's text).
	Problem string
}

// Health is one reading of a store's health. Counts are -1 when not read.
type Health struct {
	Replicas       []ReplicaHealth
	ActiveSessions int64
	LockWaiters    int64
	ThreadsRunning int64
	// WALRate is the fastest a PostgreSQL primary wrote WAL over its
	// recent readings, in bytes per second (0: not known): how fast a
	// standby's backlog can grow.
	WALRate float64
	// Problems are the parts that could not be read, and what to grant, in
	// Lethe's own words: a store whose health cannot be read is unhealthy.
	Problems []string
}

// HealthReader is implemented by drivers that can read a store's health
// (PostgreSQL, MySQL/MariaDB). An error means nothing could be read.
type HealthReader interface {
	Health(ctx context.Context, q HealthQuery) (Health, error)
}
