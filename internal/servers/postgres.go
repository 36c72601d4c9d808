package servers

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Postgres is a running PostgreSQL server and a superuser connection to it.
type Postgres struct {
	Host     string
	Port     int
	User     string // a superuser (CREATEDB for a server of ConnectPostgres)
	Password string
	Version  string // server_version
	// CACert is the PEM certificate of the throwaway authority that signed
	// the server's certificate (for 127.0.0.1 and localhost) when it was
	// started with PostgresOptions.TLS; nil otherwise.
	CACert []byte

	replication bool // started with PostgresOptions.Replication

	// A started server: its process and how to start it again (Stop,
	// Start).
	group *Group
	proc  *process
	spec  procSpec

	adminURL *url.URL   // connects to the maintenance database
	mu       sync.Mutex // serialises statements on admin
	admin    *pgx.Conn
}

// PostgresOptions configure a started PostgreSQL.
type PostgresOptions struct {
	// TLS makes the server accept TLS (ssl=on, a certificate of a
	// throwaway authority: Postgres.CACert) besides plain connections.
	TLS bool
	// Settings are further "name=value" server settings; they override the
	// defaults (the server is tuned for throwaway data: no fsync, no
	// replication, 200 connections, 128MB shared_buffers).
	Settings []string
	// Replication makes the server a primary that streaming standbys can
	// follow (wal_level replica, WAL senders): see StartPostgresStandby.
	Replication bool
}

// URL is a postgres:// URL for pgx (pgx.Connect, pgxpool.New, database/sql
// with the pgx stdlib driver) connecting as User to database. A started
// server's URL has sslmode=disable; a connected one keeps its DSN's options.
func (p *Postgres) URL(database string) string {
	u := *p.adminURL
	u.Path = "/" + database
	return u.String()
}

// CreateDatabase creates an empty database.
func (p *Postgres) CreateDatabase(ctx context.Context, name string) error {
	return p.exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
}

// Close closes the admin connection; the server keeps running.
func (p *Postgres) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.admin != nil {
		_ = p.admin.Close(context.Background())
		p.admin = nil
	}
}

// exec runs one statement on the admin connection, reconnecting once if the
// connection was lost.
func (p *Postgres) exec(ctx context.Context, sql string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for attempt := 0; ; attempt++ {
		if p.admin == nil || p.admin.IsClosed() {
			c, err := pgx.Connect(ctx, p.adminURL.String())
			if err != nil {
				return err
			}
			p.admin = c
		}
		_, err := p.admin.Exec(ctx, sql)
		if err == nil || attempt > 0 || !p.admin.IsClosed() {
			return err
		}
	}
}

// StartPostgres starts a PostgreSQL server: initdb (or a copy of the cached
// template) and postgres, as an unprivileged user when running as root.
func (g *Group) StartPostgres(ctx context.Context, o PostgresOptions) (*Postgres, error) {
	initdb, postgres := findPostgres()
	if initdb == "" || postgres == "" {
		return nil, &MissingError{What: "initdb/postgres", Where: "PATH or /usr/lib/postgresql/*/bin", Install: "apt-get install -y postgresql"}
	}

	dir, cred, err := g.postgresDir("postgres")
	if err != nil {
		return nil, err
	}
	env := cleanEnv("PG")
	logPath := filepath.Join(dir, "postgres.log")
	data := filepath.Join(dir, "data")
	key := templateKey(initdb, postgres)
	if !fromTemplate("postgres", key, data, cred) {
		if err := initPostgres(ctx, initdb, dir, data, logPath, env, cred); err != nil {
			return nil, err
		}
		saveTemplate("postgres", key, data)
	}

	settings := []string{
		"listen_addresses=127.0.0.1",
		"unix_socket_directories=",
		"fsync=off",
		"synchronous_commit=off",
		"full_page_writes=off",
		"wal_level=minimal",
		"max_wal_senders=0",
		"max_wal_size=1GB",
		"checkpoint_timeout=30min",
		"max_connections=200",
		"shared_buffers=128MB",
		"dynamic_shared_memory_type=mmap",
		"huge_pages=off",
		"log_min_messages=warning",
		"log_line_prefix=%m [%p] ",
	}
	var caCert []byte
	if o.TLS {
		cert, err := newServerCert(dir, cred)
		if err != nil {
			return nil, fmt.Errorf("PostgreSQL: creating a test certificate: %w", err)
		}
		// Plain connections are still accepted (pg_hba "host").
		settings = append(settings, "ssl=on", "ssl_cert_file="+cert.CertFile, "ssl_key_file="+cert.KeyFile)
		caCert = cert.CAPEM
	}
	if o.Replication {
		settings = append(settings, "wal_level=replica", "max_wal_senders=10", "wal_keep_size=1GB")
	}
	// A later -c wins over an earlier one.
	settings = append(settings, o.Settings...)

	return startWithRetry(func(port int) (*Postgres, error) {
		args := []string{"-D", data, "-p", strconv.Itoa(port)}
		for _, s := range settings {
			args = append(args, "-c", s)
		}
		spec := procSpec{
			name: "PostgreSQL", path: postgres, dir: dir, logPath: logPath, env: env, cred: cred, args: args,
			// SIGQUIT is immediate shutdown: no checkpoint (the data is
			// thrown away) but shared memory is still released.
			stopSig: syscall.SIGQUIT,
		}
		p, err := g.start(spec)
		if err != nil {
			return nil, err
		}
		u := &url.URL{
			Scheme:   "postgres",
			User:     url.UserPassword("lethe", pgBootstrapPassword),
			Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
			Path:     "/postgres",
			RawQuery: "sslmode=disable",
		}
		var admin *pgx.Conn
		err = g.waitReady(ctx, p, func(ctx context.Context) error {
			c, err := pgx.Connect(ctx, u.String())
			if err != nil {
				return err
			}
			admin = c
			return nil
		})
		if err != nil {
			return nil, err
		}
		// The data directory may come from a cached template: replace the
		// bootstrap password with one of this server's own.
		password := randomHex(12)
		srv := &Postgres{Host: "127.0.0.1", Port: port, User: "lethe", Password: password, CACert: caCert, admin: admin, replication: o.Replication,
			group: g, proc: p, spec: spec}
		if err := srv.setUp(ctx, "ALTER ROLE lethe PASSWORD "+sqlQuote(password)); err != nil {
			_ = admin.Close(context.Background())
			g.unregisterAndStop(p)
			return nil, err
		}
		u.User = url.UserPassword("lethe", password)
		srv.adminURL = u
		return srv, nil
	})
}

// setUp runs a statement that prepares the server (none when empty) and
// reads its version.
func (p *Postgres) setUp(ctx context.Context, stmt string) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	if stmt != "" {
		if _, err := p.admin.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("PostgreSQL: %w", err)
		}
	}
	if err := p.admin.QueryRow(ctx, "SHOW server_version").Scan(&p.Version); err != nil {
		return fmt.Errorf("PostgreSQL: reading the version: %w", err)
	}
	return nil
}

// pgBootstrapPassword is the password initdb gives the lethe superuser; the
// started server replaces it right away.
const pgBootstrapPassword = "lethe-bootstrap"

// initPostgres runs initdb into data, as cred's user.
func initPostgres(ctx context.Context, initdb, dir, data, logPath string, env []string, cred *syscall.Credential) error {
	pwfile := filepath.Join(dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(pgBootstrapPassword+"\n"), 0o600); err != nil {
		return err
	}
	defer os.Remove(pwfile)
	if cred != nil {
		if err := os.Chown(pwfile, int(cred.Uid), int(cred.Gid)); err != nil {
			return err
		}
	}
	cmd := exec.CommandContext(ctx, initdb, "-D", data, "-U", "lethe", "--pwfile", pwfile,
		"--auth-host=scram-sha-256", "--auth-local=trust",
		"-E", "UTF8", "--locale=C", "--no-sync")
	cmd.Dir = dir
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	return runLogged("initdb", cmd, logPath)
}

// ConnectPostgres uses a server that already runs, given a postgres:// URL
// of a user who may create databases; the URL's path names the database to
// connect to for that.
func ConnectPostgres(ctx context.Context, dsn string) (*Postgres, error) {
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return nil, fmt.Errorf("not a postgres:// URL")
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	p := &Postgres{Host: cfg.Host, Port: int(cfg.Port), User: cfg.User, Password: cfg.Password, adminURL: u, admin: c}
	if err := p.setUp(ctx, ""); err != nil {
		_ = c.Close(context.Background())
		return nil, err
	}
	return p, nil
}

// findPostgres returns initdb and postgres: from PATH, else from the highest
// /usr/lib/postgresql/<version>/bin.
func findPostgres() (initdb, postgres string) {
	if p, err := exec.LookPath("initdb"); err == nil {
		initdb = p
		if real, err := filepath.EvalSymlinks(p); err == nil {
			if q := filepath.Join(filepath.Dir(real), "postgres"); isExecutable(q) {
				return initdb, q
			}
		}
		if q, err := exec.LookPath("postgres"); err == nil {
			return initdb, q
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgVersion(dirs[i]) > pgVersion(dirs[j]) })
	for _, d := range dirs {
		i, p := filepath.Join(d, "initdb"), filepath.Join(d, "postgres")
		if isExecutable(i) && isExecutable(p) {
			return i, p
		}
	}
	return "", ""
}

// pgVersion turns /usr/lib/postgresql/15/bin (or 9.6) into a sortable number.
func pgVersion(binDir string) float64 {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(binDir)), 64)
	return v
}

// unprivilegedCredential is nil when the caller does not run as root, else
// the "postgres" system user (or "nobody"): initdb and postgres refuse root.
// postgresDir makes a server directory owned by the user PostgreSQL runs
// as (unprivilegedCredential; nil when not root).
func (g *Group) postgresDir(name string) (string, *syscall.Credential, error) {
	dir, err := g.serverDir(name)
	if err != nil {
		return "", nil, err
	}
	cred, err := unprivilegedCredential()
	if err != nil {
		return "", nil, err
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return "", nil, err
		}
	}
	return dir, cred, nil
}

func unprivilegedCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
	}
	return nil, fmt.Errorf("running as root and neither the postgres nor the nobody user exists; " +
		"PostgreSQL refuses to run as root (apt-get install -y postgresql creates the postgres user)")
}

// PostgresTool returns the path of a client program of the PostgreSQL that
// StartPostgres runs (pg_dump, pg_restore, psql): the one beside its initdb,
// so a dump is taken by the server's own version, else from PATH.
func PostgresTool(name string) (string, error) {
	if initdb, _ := findPostgres(); initdb != "" {
		dir := filepath.Dir(initdb)
		if real, err := filepath.EvalSymlinks(initdb); err == nil {
			dir = filepath.Dir(real)
		}
		if p := filepath.Join(dir, name); isExecutable(p) {
			return p, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", &MissingError{What: name, Where: "PATH and /usr/lib/postgresql/*/bin", Install: "apt-get install postgresql"}
}
