package postgres

import (
	"context"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lethe-dev/lethe/internal/datastore"
)

// Defaults used when the Config leaves a limit at zero. They match the
// DataStore API defaults.
const (
	DefaultMaxConnections   = 4
	DefaultStatementTimeout = 5 * time.Second
	DefaultLockTimeout      = 1 * time.Second
	defaultConnectTimeout   = 10 * time.Second
)

// Driver is the PostgreSQL implementation of datastore.Driver. It is safe for
// concurrent use.
type Driver struct {
	pool             *pgxpool.Pool
	statementTimeout time.Duration
	lockTimeout      time.Duration

	mu    sync.RWMutex
	cache map[tableKey]*table

	// deleteShape selects the DELETE statement shape; see shapeFor.
	deleteShape deleteShape

	// wal remembers when the primary wrote which WAL position, so that
	// Health can tell how long ago a standby's first unreplayed WAL was
	// written (health.go).
	wal walClock

	// onRangeAttempt, when set (tests only), is called after each estimated
	// range DELETE has been committed or rolled back.
	onRangeAttempt func(rangeAttempt)
}

var _ datastore.Driver = (*Driver)(nil)

// New opens a connection pool for cfg. It does not connect yet: Probe does,
// and so does the first operation. Errors are classified like every other
// error of the driver (a bad config is datastore.ErrInvalid).
func New(ctx context.Context, cfg datastore.Config) (*Driver, error) {
	const op = "open"
	if cfg.Type != "" && !strings.EqualFold(cfg.Type, "PostgreSQL") {
		return nil, settings(op, "config type %q is not PostgreSQL", cfg.Type)
	}
	if cfg.Host == "" {
		return nil, settings(op, "host is required")
	}
	if cfg.Database == "" {
		return nil, settings(op, "database is required")
	}
	port := cfg.Port
	if port == 0 {
		port = 5432
	}
	if port < 0 || port > 65535 {
		return nil, settings(op, "port %d out of range", cfg.Port)
	}
	// No "prefer": a server that declines TLS must not receive the password
	// in clear.
	sslmode, ok := map[string]string{
		datastore.TLSDisable: "disable", datastore.TLSRequire: "require", datastore.TLSVerifyFull: "verify-full",
	}[cfg.TLSMode()]
	if !ok {
		return nil, settings(op, "unknown TLS mode %q (Disable, Require or VerifyFull)", cfg.TLS)
	}
	tlsConfig, err := cfg.ClientTLS(cfg.Host)
	if err != nil {
		return nil, settings(op, "%v", strings.TrimPrefix(err.Error(), datastore.ErrSettings.Error()+": "))
	}

	u := url.URL{
		Scheme:   "postgres",
		Host:     net.JoinHostPort(cfg.Host, strconv.Itoa(port)),
		Path:     "/" + cfg.Database,
		RawQuery: url.Values{"sslmode": {sslmode}}.Encode(),
	}
	if cfg.Username != "" || cfg.Password != "" {
		u.User = url.UserPassword(cfg.Username, cfg.Password)
	}
	pc, err := pgxpool.ParseConfig(u.String())
	if err != nil {
		// The parse error may quote the connection string; keep it out.
		return nil, settings(op, "invalid connection settings for %s", cfg.String())
	}
	// Use exactly the TLS configuration of the DataStore (its CA bundle),
	// never a fallback: pgx adds plain-text fallbacks only for sslmode
	// prefer and allow, which are not offered.
	pc.ConnConfig.TLSConfig = tlsConfig
	pc.ConnConfig.Fallbacks = nil
	// Every connection goes through the manager's network policy: the
	// lookup checks every address of the host and returns them, and the
	// dial connects to one of those addresses only (TLS still verifies
	// the certificate against cfg.Host, the TLSConfig's ServerName).
	policy := cfg.NetworkPolicy()
	pc.ConnConfig.LookupFunc = func(ctx context.Context, host string) ([]string, error) {
		ips, err := policy.Resolve(ctx, host, port)
		if err != nil {
			return nil, err
		}
		out := make([]string, len(ips))
		for i, ip := range ips {
			out[i] = ip.String()
		}
		return out, nil
	}
	pc.ConnConfig.DialFunc = policy.DialContext
	maxConns := cfg.MaxConnections
	if maxConns <= 0 {
		maxConns = DefaultMaxConnections
	}
	pc.MaxConns = int32(maxConns)
	pc.MinConns = 0
	pc.MaxConnIdleTime = 5 * time.Minute
	if pc.ConnConfig.ConnectTimeout == 0 {
		pc.ConnConfig.ConnectTimeout = defaultConnectTimeout
	}
	rp := pc.ConnConfig.RuntimeParams
	rp["application_name"] = "lethe"
	// Cursors carry key values as text and are parsed back on possibly
	// another connection: pin the formats that make the text round-trip.
	rp["datestyle"] = "ISO, MDY"
	rp["intervalstyle"] = "postgres"
	rp["extra_float_digits"] = "3"
	lockTimeout := cfg.LockTimeout
	if lockTimeout <= 0 {
		lockTimeout = DefaultLockTimeout
	}
	// lock_timeout for the whole session, from its first statement: pgx
	// prepares (parses) a statement in its own round trip, before the
	// transaction's SET LOCAL, and parsing a statement on a table already
	// takes the table's lock. So does every catalog read. The SET LOCAL of
	// begin repeats the value for the transaction; statement_timeout stays
	// transaction-local (see begin).
	rp["lock_timeout"] = strconv.FormatInt(ms(lockTimeout), 10)
	// Statements are prepared once per connection and re-executed for
	// every batch; the server's default plan cache mode (auto) plans the
	// first executions with the actual values and keeps a generic plan
	// only when it is no worse, which saves a replanning per batch.

	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, classify(op, err)
	}
	d := &Driver{
		pool:             pool,
		statementTimeout: cfg.StatementTimeout,
		lockTimeout:      lockTimeout,
		cache:            map[tableKey]*table{},
		deleteShape:      shapeAuto,
	}
	if d.statementTimeout <= 0 {
		d.statementTimeout = DefaultStatementTimeout
	}
	return d, nil
}

// Probe connects, checks the credentials and reports the server version.
func (d *Driver) Probe(ctx context.Context) (datastore.ServerInfo, error) {
	var v string
	if err := d.pool.QueryRow(ctx, "SELECT current_setting('server_version')").Scan(&v); err != nil {
		return datastore.ServerInfo{}, classify("probe", err)
	}
	return datastore.ServerInfo{Version: "PostgreSQL " + v}, nil
}

// Close releases the pool's connections.
func (d *Driver) Close() error {
	d.pool.Close()
	return nil
}

// querier is what a transaction body uses of its connection.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// begin is the statement opening a batch transaction with the configured
// timeouts set LOCAL, so they end with the transaction and never leak into
// the pooled session. SET does not take bind parameters; these are integers
// formatted here. Read-only transactions (counting) keep the lock timeout
// but are bounded by the caller's context instead of the statement timeout:
// an exact count of a large table legitimately takes longer than one batch.
func (d *Driver) begin(readOnly bool) []string {
	if readOnly {
		return []string{"BEGIN READ ONLY", "SET LOCAL lock_timeout = " + strconv.FormatInt(ms(d.lockTimeout), 10)}
	}
	return []string{"BEGIN",
		"SET LOCAL lock_timeout = " + strconv.FormatInt(ms(d.lockTimeout), 10),
		"SET LOCAL statement_timeout = " + strconv.FormatInt(ms(d.statementTimeout), 10)}
}

// inTx runs fn in one transaction on one pooled connection: BEGIN and the
// SET LOCALs go in one round trip, then fn's statements, then COMMIT. On
// error the transaction is rolled back (a connection left unusable is
// discarded by the pool).
func (d *Driver) inTx(ctx context.Context, op string, readOnly bool, fn func(querier) error) error {
	conn, err := d.pool.Acquire(ctx)
	if err != nil {
		return classify(op, err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, strings.Join(d.begin(readOnly), "; ")); err != nil {
		rollback(ctx, conn)
		return classify(op, err)
	}
	if err := fn(conn); err != nil {
		rollback(ctx, conn)
		return classify(op, err)
	}
	if _, err := conn.Exec(ctx, "COMMIT"); err != nil {
		rollback(ctx, conn)
		return classify(op, err)
	}
	return nil
}

func rollback(ctx context.Context, conn *pgxpool.Conn) {
	if conn.Conn().PgConn().TxStatus() != 'I' && !conn.Conn().IsClosed() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_, _ = conn.Exec(rctx, "ROLLBACK")
	}
}

// oneShot runs one statement as its own transaction in a single round trip:
// BEGIN, the SET LOCALs, the statement and COMMIT are pipelined, and the
// statement's one row is scanned into dest. If the statement fails the
// server skips the COMMIT, and the pool discards the connection, whose open
// transaction the server then rolls back.
func (d *Driver) oneShot(ctx context.Context, op string, readOnly bool, sql string, args []any, dest ...any) error {
	b := &pgx.Batch{}
	for _, s := range d.begin(readOnly) {
		b.Queue(s)
	}
	b.Queue(sql, args...)
	b.Queue("COMMIT")
	br := d.pool.SendBatch(ctx, b)
	err := func() error {
		for range d.begin(readOnly) {
			if _, err := br.Exec(); err != nil {
				return err
			}
		}
		if err := br.QueryRow().Scan(dest...); err != nil {
			return err
		}
		_, err := br.Exec()
		return err
	}()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return classify(op, err)
}

// lockWait names the configured lockTimeout in a lock timeout error (see
// datastore.LockWait). Every exported operation applies it to its error.
func (d *Driver) lockWait(err *error) {
	*err = datastore.LockWait(*err, d.lockTimeout)
}

func ms(d time.Duration) int64 {
	m := d.Milliseconds()
	if m < 1 {
		m = 1
	}
	return m
}
