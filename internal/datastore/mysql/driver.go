package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/lethe-dev/lethe/internal/datastore"
)

const (
	defaultPort      = 3306
	defaultBatchSize = 1000
	// maxBatchSize bounds Operation.BatchSize: one batch is one short
	// transaction, and a larger one would hold locks for too long.
	maxBatchSize = 100_000
	dialTimeout  = 10 * time.Second
	// tableCacheTTL bounds how long Count and Execute trust table metadata
	// (columns, keys) learned earlier; Describe always reads it afresh.
	tableCacheTTL = time.Minute
)

// deleteMode is how a delete batch is written. See Execute.
type deleteMode int

const (
	// deleteAuto is deleteRange, on MySQL and MariaDB alike (measured by
	// BenchmarkDeleteModes).
	deleteAuto deleteMode = iota
	// deleteReturning: one DELETE … ORDER BY key LIMIT n RETURNING key
	// (MariaDB only).
	deleteReturning
	// deleteRange: SELECT the batch's keys in key order (no lock), then
	// DELETE … WHERE <match> AND first key <= key <= last key.
	deleteRange
	// deleteKeys: SELECT the batch's keys FOR UPDATE, then DELETE … WHERE
	// key IN (…).
	deleteKeys
)

func (m deleteMode) String() string {
	switch m {
	case deleteReturning:
		return "returning"
	case deleteRange:
		return "range"
	case deleteKeys:
		return "keys"
	}
	return "auto"
}

// Driver is the MySQL/MariaDB driver. It is safe for concurrent use.
type Driver struct {
	db *sql.DB

	version     string
	mariaDB     bool
	foldNames   bool // lower_case_table_names != 0: table names compare case-insensitively
	isolation   string
	stmtTimeout time.Duration
	lockTimeout time.Duration
	deleteMode  deleteMode

	mu     sync.Mutex
	tables map[string]cachedTable

	// cfg is the configuration the driver was opened with: replicas whose
	// health is read connect with its TLS settings and network policy.
	cfg      datastore.Config
	replicas replicaPool
}

type cachedTable struct {
	meta *tableMeta
	at   time.Time
}

var _ datastore.Driver = (*Driver)(nil)

// serverInfo is what New learns of the server on its first connection.
type serverInfo struct {
	version      string
	mariaDB      bool
	foldNames    bool
	isolationVar string // transaction_isolation or tx_isolation
	statementLog bool   // binary log on with binlog_format=STATEMENT
}

// New connects to the MySQL or MariaDB server of cfg, learns which one it is
// and returns a driver with at most cfg.MaxConnections connections. Every
// connection runs with time_zone '+00:00', innodb_lock_wait_timeout and
// lock_wait_timeout of cfg.LockTimeout (whole seconds, rounded up) and, unless
// the binary log is statement-based, READ COMMITTED isolation.
func New(ctx context.Context, cfg datastore.Config) (*Driver, error) {
	const op = "connect"
	if cfg.Host == "" {
		return nil, settings(op, "host is empty")
	}
	if err := checkIdent(op, "database", cfg.Database); err != nil {
		return nil, asSettings(err)
	}
	if cfg.StatementTimeout < 0 || cfg.LockTimeout < 0 {
		return nil, settings(op, "timeouts must not be negative")
	}
	base, err := baseConfig(cfg)
	if err != nil {
		return nil, err
	}

	// First connection: learn the flavor and the variables whose names
	// differ between MySQL and MariaDB versions.
	probe, err := openDB(base, 1)
	if err != nil {
		return nil, err
	}
	info, err := detect(ctx, probe)
	probe.Close()
	if err != nil {
		return nil, err
	}

	final := base.Clone()
	isolation := ""
	if !info.statementLog && info.isolationVar != "" {
		// READ COMMITTED: a batch's locking read locks the rows it
		// returns, not every row it scanned past, and takes no gap locks
		// that would block the application's inserts. Statement-based
		// binary logging forbids it for InnoDB, so those servers keep
		// their default.
		final.Params[info.isolationVar] = "'READ-COMMITTED'"
		isolation = "READ-COMMITTED"
	}
	maxConns := cfg.MaxConnections
	if maxConns <= 0 {
		maxConns = 4
	}
	db, err := openDB(final, maxConns)
	if err != nil {
		return nil, err
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, classify(op, err)
	}
	return &Driver{
		db:          db,
		version:     info.version,
		mariaDB:     info.mariaDB,
		foldNames:   info.foldNames,
		isolation:   isolation,
		stmtTimeout: cfg.StatementTimeout,
		lockTimeout: cfg.LockTimeout,
		tables:      map[string]cachedTable{},
		cfg:         cfg,
	}, nil
}

// baseConfig is the go-sql-driver configuration of cfg, without the
// isolation level (whose variable name depends on the server).
func baseConfig(cfg datastore.Config) (*gomysql.Config, error) {
	const op = "connect"
	port := cfg.Port
	if port == 0 {
		port = defaultPort
	}
	c := gomysql.NewConfig()
	c.User = cfg.Username
	c.Passwd = cfg.Password
	c.Net = "tcp"
	c.Addr = net.JoinHostPort(cfg.Host, strconv.Itoa(port))
	c.DBName = cfg.Database
	c.ParseTime = true
	c.Loc = time.UTC
	c.Timeout = dialTimeout
	// Every connection goes through the manager's network policy (TLS,
	// negotiated after the server's greeting, still verifies the
	// certificate against cfg.Host).
	c.DialFunc = cfg.NetworkPolicy().DialContext
	c.MultiStatements = false
	c.InterpolateParams = false // values travel as bound parameters of prepared statements
	c.Logger = &gomysql.NopLogger{}
	// No "preferred": a server that declines TLS must not receive the
	// credentials in clear.
	tlsConfig, err := cfg.ClientTLS(cfg.Host)
	if err != nil {
		return nil, settings(op, "%v", strings.TrimPrefix(err.Error(), datastore.ErrSettings.Error()+": "))
	}
	if tlsConfig == nil {
		c.TLSConfig = "false"
	} else {
		c.TLS = tlsConfig
	}
	lock := int64(lockWaitLimit(cfg.LockTimeout).Seconds())
	c.Params = map[string]string{
		// TIMESTAMP columns are converted between UTC and the session time
		// zone: with UTC, a bound UTC instant means what it says.
		"time_zone":                "'+00:00'",
		"innodb_lock_wait_timeout": strconv.FormatInt(lock, 10),
		// Metadata locks (ALTER TABLE … DROP PARTITION).
		"lock_wait_timeout": strconv.FormatInt(lock, 10),
	}
	return c, nil
}

// lockWaitLimit is the lock wait limit the server applies for a
// LockTimeout: whole seconds, rounded up, at least 1; 50 (InnoDB's default)
// when LockTimeout is 0 ("not set").
func lockWaitLimit(lockTimeout time.Duration) time.Duration {
	if lockTimeout == 0 {
		return 50 * time.Second
	}
	return max(time.Second, time.Duration(math.Ceil(lockTimeout.Seconds()))*time.Second)
}

// lockWait names the server's lock wait limit in a lock timeout error (see
// datastore.LockWait). Every exported operation applies it to its error.
func (d *Driver) lockWait(err *error) {
	*err = datastore.LockWait(*err, lockWaitLimit(d.lockTimeout))
}

func openDB(c *gomysql.Config, maxConns int) (*sql.DB, error) {
	conn, err := gomysql.NewConnector(c)
	if err != nil {
		return nil, settings("connect", "connection settings rejected (%T)", err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(maxConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	db.SetConnMaxLifetime(30 * time.Minute)
	return db, nil
}

func detect(ctx context.Context, db *sql.DB) (serverInfo, error) {
	const op = "connect"
	var info serverInfo
	var fold int
	var logBin int
	var binlogFormat sql.NullString
	err := db.QueryRowContext(ctx, "SELECT VERSION(), @@lower_case_table_names, @@log_bin, @@binlog_format").
		Scan(&info.version, &fold, &logBin, &binlogFormat)
	if err != nil {
		return info, classify(op, err)
	}
	info.mariaDB = strings.Contains(strings.ToLower(info.version), "mariadb")
	info.foldNames = fold != 0
	info.statementLog = logBin != 0 && strings.EqualFold(binlogFormat.String, "STATEMENT")
	// MySQL 8 and MariaDB ≥ 11.1 call it transaction_isolation; older
	// MariaDB only knows tx_isolation.
	for _, v := range []string{"transaction_isolation", "tx_isolation"} {
		var level string
		err := db.QueryRowContext(ctx, "SELECT @@"+v).Scan(&level)
		if err == nil {
			info.isolationVar = v
			break
		}
		var me *gomysql.MySQLError
		if !errors.As(err, &me) || me.Number != erUnknownSystemVariable {
			return info, classify(op, err)
		}
	}
	return info, nil
}

// Probe checks reachability and credentials and reports the version.
func (d *Driver) Probe(ctx context.Context) (datastore.ServerInfo, error) {
	var v string
	if err := d.db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&v); err != nil {
		return datastore.ServerInfo{}, classify("probe", err)
	}
	return datastore.ServerInfo{Version: v}, nil
}

// Close releases connections.
func (d *Driver) Close() error {
	d.replicas.close()
	return d.db.Close()
}

// MariaDB reports whether the server is MariaDB (false: MySQL).
func (d *Driver) MariaDB() bool { return d.mariaDB }

// Version is the server's VERSION() as seen at connect.
func (d *Driver) Version() string { return d.version }

// stmtPrefix limits a statement's execution time on MariaDB; MySQL gets the
// MAX_EXECUTION_TIME hint in its SELECTs instead (selectHint).
func (d *Driver) stmtPrefix() string {
	if !d.mariaDB || d.stmtTimeout <= 0 {
		return ""
	}
	return "SET STATEMENT max_statement_time=" + strconv.FormatFloat(d.stmtTimeout.Seconds(), 'f', -1, 64) + " FOR "
}

// selectHint is the optimizer hint that limits a SELECT's execution time on
// MySQL (MariaDB reads it as a comment).
func (d *Driver) selectHint() string {
	if d.mariaDB || d.stmtTimeout <= 0 {
		return ""
	}
	ms := d.stmtTimeout.Milliseconds()
	if ms < 1 {
		ms = 1
	}
	return "/*+ MAX_EXECUTION_TIME(" + strconv.FormatInt(ms, 10) + ") */ "
}

// batchContext bounds a whole batch on the client side too: MySQL cannot
// limit the execution time of a DELETE or UPDATE, and a server that stops
// answering must not hold the engine forever.
func (d *Driver) batchContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if d.stmtTimeout <= 0 {
		return ctx, func() {}
	}
	lock := d.lockTimeout
	if lock <= 0 {
		lock = 50 * time.Second
	}
	return context.WithTimeout(ctx, 3*d.stmtTimeout+2*lock+5*time.Second)
}

func (d *Driver) String() string {
	flavor := "MySQL"
	if d.mariaDB {
		flavor = "MariaDB"
	}
	return fmt.Sprintf("mysql driver (%s %s)", flavor, d.version)
}
