package testharness

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// MySQL is a fresh, empty MariaDB (MySQL-compatible) database.
type MySQL struct {
	Host     string
	Port     int
	User     string // has ALL PRIVILEGES WITH GRANT OPTION on the throwaway server
	Password string
	Database string
	// DSN is for go-sql-driver/mysql (sql.Open("mysql", DSN)), with
	// parseTime=true&multiStatements=false.
	DSN string
}

// myServer is the MariaDB server of this test process.
type myServer struct {
	host, user, password string
	port                 int
	cfg                  *mysql.Config // admin connection, no database
	admin                *sql.DB
}

var myLazy lazy[*myServer]

// MariaDB returns a fresh database on a throwaway MariaDB server (or on the
// server of LETHE_TEST_MYSQL_DSN). The server starts on first use.
func MariaDB(tb testing.TB) MySQL {
	tb.Helper()
	requireMain(tb)
	srv := myLazy.get(tb, "MariaDB", startMariaDB)

	name := uniqueName(tb, "lethe", '_', 64)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	q := "CREATE DATABASE `" + name + "` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
	if _, err := srv.admin.ExecContext(ctx, q); err != nil {
		tb.Fatalf("testharness: MariaDB: creating database %s: %v", name, err)
	}
	cfg := srv.cfg.Clone()
	cfg.DBName = name
	return MySQL{
		Host: srv.host, Port: srv.port, User: srv.user, Password: srv.password,
		Database: name, DSN: mysqlDSN(cfg),
	}
}

// mysqlDSN formats cfg with parseTime=true and an explicit
// multiStatements=false (FormatDSN leaves defaults out).
func mysqlDSN(cfg *mysql.Config) string {
	cfg.ParseTime = true
	cfg.MultiStatements = false
	dsn := cfg.FormatDSN()
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	return dsn + sep + "multiStatements=false"
}

func startMariaDB() (*myServer, error) {
	if dsn := os.Getenv("LETHE_TEST_MYSQL_DSN"); dsn != "" {
		return externalMariaDB(dsn)
	}
	const install = "install them with: apt-get install -y mariadb-server (or set LETHE_TEST_MYSQL_DSN)"
	mariadbd := lookBinary([]string{"mariadbd"}, "/usr/sbin/mariadbd", "/usr/libexec/mariadbd", "/usr/sbin/mysqld")
	installDB := lookBinary([]string{"mariadb-install-db", "mysql_install_db"}, "/usr/bin/mariadb-install-db", "/usr/bin/mysql_install_db")
	if mariadbd == "" || installDB == "" {
		return nil, fmt.Errorf("mariadbd/mariadb-install-db not found in PATH, /usr/sbin or /usr/bin; %s", install)
	}

	dir, err := serverDir("mariadb")
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	logPath := filepath.Join(dir, "mariadb.log")
	var asRoot []string
	if os.Geteuid() == 0 {
		asRoot = []string{"--user=root"}
	}
	env := cleanEnv("MYSQL_", "MARIADB_")
	key := templateKey(mariadbd, installDB)
	if !fromTemplate("mariadb", key, data, nil) {
		if err := initMariaDB(installDB, dir, data, logPath, env, asRoot); err != nil {
			return nil, err
		}
		saveTemplate("mariadb", key, data)
	}

	// A Unix socket path is limited to 107 bytes; a long TMPDIR can exceed it.
	socket := filepath.Join(dir, "mysqld.sock")
	if len(socket) > 100 {
		socket = filepath.Join("/tmp", fmt.Sprintf("lethe-mysqld-%d-%s.sock", os.Getpid(), randomHex(4)))
		removeAtShutdown(socket)
	}

	return startWithRetry(func(port int) (*myServer, error) {
		args := append([]string{
			"--no-defaults", // must come first
			"--datadir=" + data,
			"--port=" + strconv.Itoa(port),
			"--bind-address=127.0.0.1",
			"--socket=" + socket,
			"--pid-file=" + filepath.Join(dir, "mysqld.pid"),
			"--skip-name-resolve",
			"--skip-log-bin",
			"--character-set-server=utf8mb4",
			"--collation-server=utf8mb4_unicode_ci",
			"--innodb-flush-log-at-trx-commit=2",
			"--innodb-doublewrite=0",
			"--innodb-buffer-pool-size=256M",
			"--max-connections=300",
		}, asRoot...)
		p, err := startProcess(procSpec{
			name: "MariaDB", path: mariadbd, args: args, dir: dir, logPath: logPath, env: env,
			// The data is thrown away: no need for InnoDB's clean shutdown.
			stopSig: syscall.SIGKILL,
		})
		if err != nil {
			return nil, err
		}
		cfg := mysql.NewConfig()
		cfg.User = "lethe"
		cfg.Passwd = myBootstrapPassword
		cfg.Net = "tcp"
		cfg.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		err = p.waitReady(func(ctx context.Context) error {
			return pingMySQL(ctx, cfg)
		})
		if err != nil {
			return nil, err
		}
		// The data directory may come from a cached template: replace the
		// bootstrap password with one of this server's own.
		password := randomHex(12)
		ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
		defer cancel()
		if err := execMySQL(ctx, cfg, "ALTER USER 'lethe'@'%' IDENTIFIED BY "+sqlQuote(password)); err != nil {
			p.unregisterAndStop()
			return nil, fmt.Errorf("setting the password: %w", err)
		}
		cfg.Passwd = password
		admin, err := sql.Open("mysql", mysqlDSN(cfg.Clone()))
		if err != nil {
			p.unregisterAndStop()
			return nil, err
		}
		return &myServer{host: "127.0.0.1", port: port, user: "lethe", password: password, cfg: cfg, admin: admin}, nil
	})
}

// myBootstrapPassword is the password mariadb-install-db gives the lethe
// user; the started server replaces it right away.
const myBootstrapPassword = "lethe-bootstrap"

// initMariaDB runs mariadb-install-db into data.
func initMariaDB(installDB, dir, data, logPath string, env, asRoot []string) error {
	// Grant tables are off during bootstrap; FLUSH PRIVILEGES loads them so
	// CREATE USER works. Over TCP the root account is unusable
	// (root@localhost does not match 127.0.0.1 with skip-name-resolve), so
	// tests use this account.
	extra := filepath.Join(dir, "init.sql")
	initSQL := "FLUSH PRIVILEGES;\n" +
		"CREATE USER 'lethe'@'%' IDENTIFIED BY " + sqlQuote(myBootstrapPassword) + ";\n" +
		"GRANT ALL PRIVILEGES ON *.* TO 'lethe'@'%' WITH GRANT OPTION;\n"
	if err := os.WriteFile(extra, []byte(initSQL), 0o600); err != nil {
		return err
	}
	defer os.Remove(extra)
	args := append([]string{"--no-defaults", "--datadir=" + data,
		"--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve",
		"--extra-file=" + extra}, asRoot...)
	cmd := exec.Command(installDB, args...)
	cmd.Dir = dir
	cmd.Env = env
	return runLogged("mariadb-install-db", cmd, logPath)
}

// pingMySQL connects once with cfg.
func pingMySQL(ctx context.Context, cfg *mysql.Config) error {
	return execMySQL(ctx, cfg, "")
}

// execMySQL runs one statement (none when empty) on a new connection.
func execMySQL(ctx context.Context, cfg *mysql.Config, stmt string) error {
	db, err := sql.Open("mysql", mysqlDSN(cfg.Clone()))
	if err != nil {
		return err
	}
	defer db.Close()
	if stmt == "" {
		return db.PingContext(ctx)
	}
	_, err = db.ExecContext(ctx, stmt)
	return err
}

// externalMariaDB uses a developer's server.
func externalMariaDB(dsn string) (*myServer, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("LETHE_TEST_MYSQL_DSN: %w", err)
	}
	cfg.DBName = ""
	db, err := sql.Open("mysql", mysqlDSN(cfg.Clone()))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("connecting to LETHE_TEST_MYSQL_DSN: %w", err)
	}
	host, portStr, _ := net.SplitHostPort(cfg.Addr)
	port, _ := strconv.Atoi(portStr)
	return &myServer{host: host, port: port, user: cfg.User, password: cfg.Passwd, cfg: cfg, admin: db}, nil
}
