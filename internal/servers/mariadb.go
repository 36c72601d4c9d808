package servers

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
	"time"

	"github.com/go-sql-driver/mysql"
)

// MariaDB is a running MariaDB (MySQL-compatible) server and an account on it.
type MariaDB struct {
	Host     string
	Port     int
	User     string // ALL PRIVILEGES WITH GRANT OPTION on a started server
	Password string
	Version  string // SELECT VERSION()

	cfg   *mysql.Config // admin connection, no database
	admin *sql.DB
}

// Config is a copy of the account's connection settings for
// go-sql-driver/mysql, connecting to database ("": none), with
// parseTime=true.
func (m *MariaDB) Config(database string) *mysql.Config {
	cfg := m.cfg.Clone()
	cfg.DBName = database
	cfg.ParseTime = true
	return cfg
}

// DSN is a go-sql-driver/mysql DSN for database (sql.Open("mysql", DSN)),
// with parseTime=true&multiStatements=false.
func (m *MariaDB) DSN(database string) string { return mysqlDSN(m.Config(database)) }

// CreateDatabase creates an empty utf8mb4 database.
func (m *MariaDB) CreateDatabase(ctx context.Context, name string) error {
	_, err := m.admin.ExecContext(ctx, "CREATE DATABASE `"+strings.ReplaceAll(name, "`", "``")+"` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
	return err
}

// Close closes the admin connections; the server keeps running.
func (m *MariaDB) Close() { _ = m.admin.Close() }

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

// StartMariaDB starts a MariaDB server (mariadb-install-db or a copy of the
// cached template, then mariadbd) with an account "lethe" that connects
// over TCP.
func (g *Group) StartMariaDB(ctx context.Context) (*MariaDB, error) {
	return g.StartMariaDBWith(ctx, MariaDBOptions{})
}

// MariaDBOptions configure a started MariaDB.
type MariaDBOptions struct {
	// ServerID is the server_id (default 1).
	ServerID int
	// LogBin turns the binary log on (row format), so that replicas can
	// follow the server: see StartMariaDBReplica.
	LogBin bool
}

// StartMariaDBWith is StartMariaDB with options.
func (g *Group) StartMariaDBWith(ctx context.Context, o MariaDBOptions) (*MariaDB, error) {
	if o.ServerID == 0 {
		o.ServerID = 1
	}
	binlog := []string{"--skip-log-bin"}
	if o.LogBin {
		binlog = []string{"--log-bin=mariadb-bin", "--binlog-format=ROW"}
	}
	mariadbd := lookBinary([]string{"mariadbd"}, "/usr/sbin/mariadbd", "/usr/libexec/mariadbd", "/usr/sbin/mysqld")
	installDB := lookBinary([]string{"mariadb-install-db", "mysql_install_db"}, "/usr/bin/mariadb-install-db", "/usr/bin/mysql_install_db")
	if mariadbd == "" || installDB == "" {
		return nil, &MissingError{What: "mariadbd/mariadb-install-db", Where: "PATH, /usr/sbin or /usr/bin", Install: "apt-get install -y mariadb-server"}
	}

	dir, err := g.serverDir("mariadb")
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
		if err := initMariaDB(ctx, installDB, dir, data, logPath, env, asRoot); err != nil {
			return nil, err
		}
		saveTemplate("mariadb", key, data)
	}

	// A Unix socket path is limited to 107 bytes; a long TMPDIR can exceed it.
	socket := filepath.Join(dir, "mysqld.sock")
	if len(socket) > 100 {
		socket = filepath.Join("/tmp", fmt.Sprintf("lethe-mysqld-%d-%s.sock", os.Getpid(), randomHex(4)))
		g.removeAtClose(socket)
	}

	return startWithRetry(func(port int) (*MariaDB, error) {
		args := append([]string{
			"--no-defaults", // must come first
			"--datadir=" + data,
			"--port=" + strconv.Itoa(port),
			"--bind-address=127.0.0.1",
			"--socket=" + socket,
			"--pid-file=" + filepath.Join(dir, "mysqld.pid"),
			"--skip-name-resolve",
			"--server-id=" + strconv.Itoa(o.ServerID),
			"--character-set-server=utf8mb4",
			"--collation-server=utf8mb4_unicode_ci",
			"--innodb-flush-log-at-trx-commit=2",
			"--innodb-doublewrite=0",
			"--innodb-buffer-pool-size=256M",
			"--max-connections=300",
		}, append(binlog, asRoot...)...)
		p, err := g.start(procSpec{
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
		err = g.waitReady(ctx, p, func(ctx context.Context) error {
			return execMySQL(ctx, cfg, "")
		})
		if err != nil {
			return nil, err
		}
		// The data directory may come from a cached template: replace the
		// bootstrap password with one of this server's own.
		password := randomHex(12)
		sctx, cancel := context.WithTimeout(ctx, readyTimeout)
		defer cancel()
		if err := execMySQL(sctx, cfg, "ALTER USER 'lethe'@'%' IDENTIFIED BY "+sqlQuote(password)); err != nil {
			g.unregisterAndStop(p)
			return nil, fmt.Errorf("MariaDB: setting the password: %w", err)
		}
		cfg.Passwd = password
		m, err := openMariaDB(sctx, cfg)
		if err != nil {
			g.unregisterAndStop(p)
			return nil, err
		}
		m.Host, m.Port, m.User, m.Password = "127.0.0.1", port, "lethe", password
		return m, nil
	})
}

// openMariaDB opens the admin connections of cfg and reads the version.
func openMariaDB(ctx context.Context, cfg *mysql.Config) (*MariaDB, error) {
	admin, err := sql.Open("mysql", mysqlDSN(cfg.Clone()))
	if err != nil {
		return nil, err
	}
	m := &MariaDB{cfg: cfg, admin: admin}
	if err := admin.QueryRowContext(ctx, "SELECT VERSION()").Scan(&m.Version); err != nil {
		_ = admin.Close()
		return nil, err
	}
	return m, nil
}

// myBootstrapPassword is the password mariadb-install-db gives the lethe
// user; the started server replaces it right away.
const myBootstrapPassword = "lethe-bootstrap"

// initMariaDB runs mariadb-install-db into data.
func initMariaDB(ctx context.Context, installDB, dir, data, logPath string, env, asRoot []string) error {
	// Grant tables are off during bootstrap; FLUSH PRIVILEGES loads them so
	// CREATE USER works. Over TCP the root account is unusable
	// (root@localhost does not match 127.0.0.1 with skip-name-resolve), so
	// callers use this account.
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
	cmd := exec.CommandContext(ctx, installDB, args...)
	cmd.Dir = dir
	cmd.Env = env
	return runLogged("mariadb-install-db", cmd, logPath)
}

// execMySQL runs one statement (none when empty: a ping) on a new connection.
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

// ConnectMariaDB uses a server that already runs, given a go-sql-driver/mysql
// DSN of a user who may create databases (user:password@tcp(host:port)/).
func ConnectMariaDB(ctx context.Context, dsn string) (*MariaDB, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, err
	}
	cfg.DBName = ""
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	m, err := openMariaDB(ctx, cfg)
	if err != nil {
		return nil, err
	}
	host, portStr, _ := net.SplitHostPort(cfg.Addr)
	m.Port, _ = strconv.Atoi(portStr)
	m.Host, m.User, m.Password = host, cfg.User, cfg.Passwd
	return m, nil
}
