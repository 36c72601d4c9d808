package demo

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"text/template"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/lethe-dev/lethe/internal/servers"
)

// mariaStore holds the shop's newsletter in MariaDB: subscribers and the
// engagement events of the campaigns sent to them.
type mariaStore struct {
	srv *servers.MariaDB
	db  *sql.DB
}

const mariaDatabase = "marketing"

func (s *mariaStore) name() string   { return "MariaDB" }
func (s *mariaStore) policy() string { return "shop-newsletter-retention" }

func (s *mariaStore) describe() string {
	return fmt.Sprintf("MariaDB %s up on %s:%d", s.srv.Version, s.srv.Host, s.srv.Port)
}

func (s *mariaStore) explore() string {
	return fmt.Sprintf("mariadb -h %s -P %d -u %s -p%s %s   # MariaDB", s.srv.Host, s.srv.Port, s.srv.User, s.srv.Password, mariaDatabase)
}

func (s *mariaStore) close() {
	if s.db != nil {
		_ = s.db.Close()
	}
	if s.srv != nil {
		s.srv.Close()
	}
}

func (s *mariaStore) manifests() ([]*unstructured.Unstructured, error) {
	return manifest("mariadb.yaml", map[string]any{"Host": s.srv.Host, "Port": s.srv.Port, "Database": mariaDatabase, "Password": s.srv.Password})
}

// start starts MariaDB (internal/servers: an account "lethe" that connects
// over TCP) and opens a connection that may send sql/mariadb.sql at once.
func (s *mariaStore) start(ctx context.Context, r *run) error {
	srv, err := r.srv.StartMariaDB(ctx)
	if err != nil {
		return err
	}
	s.srv = srv
	cfg := srv.Config("")
	cfg.MultiStatements = true
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return err
	}
	s.db = db
	return db.PingContext(ctx)
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
