package testharness

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
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PG is a fresh, empty PostgreSQL database.
type PG struct {
	Host     string
	Port     int
	User     string // a superuser of the throwaway server
	Password string
	Database string
	// DSN is a postgres:// URL for pgx (pgx.Connect, pgxpool.New) and
	// database/sql with the pgx stdlib driver.
	DSN string
	// CACert is the PEM certificate of the throwaway authority that signed
	// the server's certificate (for 127.0.0.1 and localhost): the server
	// accepts TLS (ssl=on) as well as plain connections. Empty for the
	// server of LETHE_TEST_POSTGRES_DSN.
	CACert []byte
}

// pgServer is the PostgreSQL server of this test process.
type pgServer struct {
	host, user, password string
	port                 int
	adminURL             *url.URL // connects to the maintenance database
	caCert               []byte   // PEM; nil for an external server

	mu    sync.Mutex // serialises CREATE DATABASE on admin
	admin *pgx.Conn
}

var pgLazy lazy[*pgServer]

// Postgres returns a fresh database on a throwaway PostgreSQL server (or on
// the server of LETHE_TEST_POSTGRES_DSN). The server starts on first use.
func Postgres(tb testing.TB) PG {
	tb.Helper()
	requireMain(tb)
	srv := pgLazy.get(tb, "PostgreSQL", startPostgres)

	name := uniqueName(tb, "lethe", '_', 63)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		tb.Fatalf("testharness: PostgreSQL: creating database %s: %v", name, err)
	}
	u := *srv.adminURL
	u.Path = "/" + name
	return PG{
		Host: srv.host, Port: srv.port, User: srv.user, Password: srv.password,
		Database: name, DSN: u.String(), CACert: srv.caCert,
	}
}

// exec runs one statement on the admin connection, reconnecting once if the
// connection was lost.
func (s *pgServer) exec(ctx context.Context, sql string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for attempt := 0; ; attempt++ {
		if s.admin == nil || s.admin.IsClosed() {
			c, err := pgx.Connect(ctx, s.adminURL.String())
			if err != nil {
				return err
			}
			s.admin = c
		}
		_, err := s.admin.Exec(ctx, sql)
		if err == nil || attempt > 0 || !s.admin.IsClosed() {
			return err
		}
	}
}

func startPostgres() (*pgServer, error) {
	if dsn := os.Getenv("LETHE_TEST_POSTGRES_DSN"); dsn != "" {
		return externalPostgres(dsn)
	}
	initdb, postgres := findPostgres()
	if initdb == "" || postgres == "" {
		return nil, fmt.Errorf("initdb/postgres not found in PATH or /usr/lib/postgresql/*/bin; " +
			"install them with: apt-get install -y postgresql (or set LETHE_TEST_POSTGRES_DSN)")
	}

	dir, err := serverDir("postgres")
	if err != nil {
		return nil, err
	}
	cred, err := unprivilegedCredential()
	if err != nil {
		return nil, err
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, err
		}
	}
	env := cleanEnv("PG")
	logPath := filepath.Join(dir, "postgres.log")
	data := filepath.Join(dir, "data")
	key := templateKey(initdb, postgres)
	if !fromTemplate("postgres", key, data, cred) {
		if err := initPostgres(initdb, dir, data, logPath, env, cred); err != nil {
			return nil, err
		}
		saveTemplate("postgres", key, data)
	}

	cert, err := newServerCert(dir, cred)
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL: creating a test certificate: %w", err)
	}
	return startWithRetry(func(port int) (*pgServer, error) {
		p, err := startProcess(procSpec{
			name: "PostgreSQL", path: postgres, dir: dir, logPath: logPath, env: env, cred: cred,
			// SIGQUIT is immediate shutdown: no checkpoint (the data is
			// thrown away) but shared memory is still released.
			stopSig: syscall.SIGQUIT,
			args: []string{
				"-D", data,
				"-p", strconv.Itoa(port),
				"-c", "listen_addresses=127.0.0.1",
				"-c", "unix_socket_directories=",
				"-c", "fsync=off",
				"-c", "synchronous_commit=off",
				"-c", "full_page_writes=off",
				"-c", "wal_level=minimal",
				"-c", "max_wal_senders=0",
				"-c", "max_wal_size=1GB",
				"-c", "checkpoint_timeout=30min",
				"-c", "max_connections=200",
				"-c", "shared_buffers=128MB",
				"-c", "dynamic_shared_memory_type=mmap",
				"-c", "huge_pages=off",
				"-c", "log_min_messages=warning",
				"-c", "log_line_prefix=%m [%p] ",
				// TLS with a throwaway authority (PG.CACert); plain
				// connections are still accepted (pg_hba "host").
				"-c", "ssl=on",
				"-c", "ssl_cert_file=" + cert.CertFile,
				"-c", "ssl_key_file=" + cert.KeyFile,
			},
		})
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
		err = p.waitReady(func(ctx context.Context) error {
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
		ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
		defer cancel()
		if _, err := admin.Exec(ctx, "ALTER ROLE lethe PASSWORD "+sqlQuote(password)); err != nil {
			p.unregisterAndStop()
			return nil, fmt.Errorf("setting the password: %w", err)
		}
		u.User = url.UserPassword("lethe", password)
		return &pgServer{host: "127.0.0.1", port: port, user: "lethe", password: password, adminURL: u, admin: admin, caCert: cert.CAPEM}, nil
	})
}

// pgBootstrapPassword is the password initdb gives the lethe superuser; the
// started server replaces it right away.
const pgBootstrapPassword = "lethe-bootstrap"

// initPostgres runs initdb into data, as cred's user.
func initPostgres(initdb, dir, data, logPath string, env []string, cred *syscall.Credential) error {
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
	cmd := exec.Command(initdb, "-D", data, "-U", "lethe", "--pwfile", pwfile,
		"--auth-host=scram-sha-256", "--auth-local=trust",
		"-E", "UTF8", "--locale=C", "--no-sync")
	cmd.Dir = dir
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	return runLogged("initdb", cmd, logPath)
}

// externalPostgres uses a developer's server.
func externalPostgres(dsn string) (*pgServer, error) {
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return nil, fmt.Errorf("LETHE_TEST_POSTGRES_DSN must be a postgres:// URL")
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("LETHE_TEST_POSTGRES_DSN: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to LETHE_TEST_POSTGRES_DSN: %w", err)
	}
	return &pgServer{
		host: cfg.Host, port: int(cfg.Port), user: cfg.User, password: cfg.Password,
		adminURL: u, admin: c,
	}, nil
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

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// unprivilegedCredential is nil when the tests do not run as root, else the
// "postgres" system user (or "nobody"): initdb and postgres refuse root.
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
