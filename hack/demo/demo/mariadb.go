package demo

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"text/template"

	"github.com/go-sql-driver/mysql"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// mariaStore holds the shop's newsletter in MariaDB: subscribers and the
// engagement events of the campaigns sent to them.
type mariaStore struct {
	host, password, version string
	port                    int
	db                      *sql.DB
}

const mariaDatabase = "marketing"

func (s *mariaStore) name() string   { return "MariaDB" }
func (s *mariaStore) policy() string { return "shop-newsletter-retention" }

func (s *mariaStore) describe() string {
	return fmt.Sprintf("MariaDB %s up on %s:%d", s.version, s.host, s.port)
}

func (s *mariaStore) explore() string {
	return fmt.Sprintf("mariadb -h %s -P %d -u lethe -p%s %s   # MariaDB", s.host, s.port, s.password, mariaDatabase)
}

func (s *mariaStore) close() {
	if s.db != nil {
		_ = s.db.Close()
	}
}

func (s *mariaStore) manifests() ([]*unstructured.Unstructured, error) {
	return manifest("mariadb.yaml", map[string]any{"Host": s.host, "Port": s.port, "Database": mariaDatabase, "Password": s.password})
}

func (s *mariaStore) dsn(database string, multi bool) string {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net = "lethe", s.password, "tcp"
	cfg.Addr = net.JoinHostPort(s.host, strconv.Itoa(s.port))
	cfg.DBName = database
	cfg.ParseTime = true
	cfg.MultiStatements = multi
	return cfg.FormatDSN()
}

// start runs mariadb-install-db and mariadbd, with an account "lethe" that
// can connect over TCP.
func (s *mariaStore) start(ctx context.Context, r *run) error {
	mariadbd := lookBinary("mariadbd", "/usr/sbin/mariadbd", "/usr/libexec/mariadbd", "/usr/sbin/mysqld")
	installDB := lookBinary("mariadb-install-db", "/usr/bin/mariadb-install-db", "/usr/bin/mysql_install_db")
	if mariadbd == "" || installDB == "" {
		return errMissing{"mariadbd/mariadb-install-db", "apt-get install -y mariadb-server"}
	}
	dir, err := r.srv.serverDir("mariadb")
	if err != nil {
		return err
	}
	s.password = randomHex(12)
	data, logPath := filepath.Join(dir, "data"), filepath.Join(dir, "mariadb.log")
	var asRoot []string
	if os.Geteuid() == 0 {
		asRoot = []string{"--user=root"}
	}
	// Grant tables are off while bootstrapping; FLUSH PRIVILEGES loads them
	// so that CREATE USER works.
	initSQL := filepath.Join(dir, "init.sql")
	if err := os.WriteFile(initSQL, []byte("FLUSH PRIVILEGES;\nCREATE USER 'lethe'@'%' IDENTIFIED BY '"+s.password+"';\n"+
		"GRANT ALL PRIVILEGES ON *.* TO 'lethe'@'%' WITH GRANT OPTION;\n"), 0o600); err != nil {
		return err
	}
	env := cleanEnv("MYSQL_", "MARIADB_")
	cmd := cmdContext(ctx, installDB, append([]string{"--no-defaults", "--datadir=" + data,
		"--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve", "--extra-file=" + initSQL}, asRoot...)...)
	cmd.Dir, cmd.Env = dir, env
	if err := runLogged(cmd, logPath); err != nil {
		return err
	}
	_ = os.Remove(initSQL)
	s.host = "127.0.0.1"
	_, err = retryPorts(func(port int) (struct{}, error) {
		s.port = port
		p, err := r.srv.start(spec{
			name: "MariaDB", path: mariadbd, dir: dir, logPath: logPath, env: env, stopSig: syscall.SIGKILL,
			args: append([]string{
				"--no-defaults", "--datadir=" + data, "--port=" + strconv.Itoa(port), "--bind-address=127.0.0.1",
				"--socket=" + filepath.Join(dir, "mysqld.sock"), "--pid-file=" + filepath.Join(dir, "mysqld.pid"),
				"--skip-name-resolve", "--skip-log-bin", "--character-set-server=utf8mb4", "--collation-server=utf8mb4_unicode_ci",
				"--innodb-flush-log-at-trx-commit=2", "--innodb-doublewrite=0", "--innodb-buffer-pool-size=128M",
			}, asRoot...),
		})
		if err != nil {
			return struct{}{}, err
		}
		return struct{}{}, p.waitReady(ctx, func(ctx context.Context) error {
			db, err := sql.Open("mysql", s.dsn("", true))
			if err != nil {
				return err
			}
			if err := db.PingContext(ctx); err != nil {
				db.Close()
				return err
			}
			s.db = db
			return nil
		})
	})
	if err != nil {
		return err
	}
	return s.db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&s.version)
}

// load creates the marketing database in the server (the sequence engine's
// seq_1_to_N tables, no per-row round trips).
func (s *mariaStore) load(ctx context.Context, users int) (int64, error) {
	b, err := sqlFiles.ReadFile("sql/mariadb.sql")
	if err != nil {
		return 0, err
	}
	t, err := template.New("mariadb.sql").Parse(string(b))
	if err != nil {
		return 0, err
	}
	var q bytes.Buffer
	if err := t.Execute(&q, map[string]any{"Users": users, "Database": mariaDatabase}); err != nil {
		return 0, err
	}
	if _, err := s.db.ExecContext(ctx, q.String()); err != nil {
		return 0, fmt.Errorf("sql/mariadb.sql: %w", err)
	}
	var n int64
	err = s.db.QueryRowContext(ctx, "SELECT (SELECT count(*) FROM marketing.newsletter_subscribers) + (SELECT count(*) FROM marketing.email_events)").Scan(&n)
	return n, err
}

func (s *mariaStore) count(ctx context.Context, snap *Snapshot, subs []subject) error {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }() // after Commit: a no-op
	for _, t := range []string{"newsletter_subscribers", "email_events"} {
		var n int64
		if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM "+mariaDatabase+"."+t).Scan(&n); err != nil {
			return err
		}
		snap.Tables = append(snap.Tables, TableCount{Store: s.name(), Table: t, Rows: n, Anonymized: -1})
	}
	var old int64
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM "+mariaDatabase+".email_events WHERE created_at < UTC_TIMESTAMP() - INTERVAL 1 YEAR").Scan(&old); err != nil {
		return err
	}
	snap.Promises = append(snap.Promises, Promise{Name: "newsletter engagement deleted after 1 year", Store: s.name(), Table: "email_events", Violations: old})
	return addSubjectRows(snap, subs, s.name(), func(sub subject) (map[string]int64, error) {
		var subscribers, events int64
		email := fmt.Sprintf("user%d@example.com", sub.userID)
		if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM "+mariaDatabase+".newsletter_subscribers WHERE user_id = ? OR email IN (?, ?)",
			sub.userID, email, sub.contacts[0]).Scan(&subscribers); err != nil {
			return nil, err
		}
		if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM "+mariaDatabase+".email_events WHERE email IN (?, ?)",
			email, sub.contacts[0]).Scan(&events); err != nil {
			return nil, err
		}
		return map[string]int64{"newsletter_subscribers": subscribers, "email_events": events}, nil
	})
}
