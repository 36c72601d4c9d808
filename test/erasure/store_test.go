package erasure_test

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/datastore/mysql"
	"github.com/lethe-dev/lethe/internal/datastore/postgres"
	"github.com/lethe-dev/lethe/internal/testharness"
)

// store is one real database the property runs on, reset between cases.
type store struct {
	kind retentionv1.DataStoreType
	db   *sql.DB
	cfg  datastore.Config
}

func postgresStore(t *testing.T) *store {
	pg := testharness.Postgres(t)
	db, err := sql.Open("pgx", pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return &store{kind: retentionv1.DataStorePostgreSQL, db: db, cfg: datastore.Config{
		Type: "PostgreSQL", Host: pg.Host, Port: pg.Port, Database: pg.Database, Username: pg.User, Password: pg.Password, TLS: "Disable",
		MaxConnections: 4, StatementTimeout: 10 * time.Second, LockTimeout: 5 * time.Second,
	}}
}

func mariadbStore(t *testing.T) *store {
	my := testharness.MariaDB(t)
	db, err := sql.Open("mysql", my.DSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return &store{kind: retentionv1.DataStoreMySQL, db: db, cfg: datastore.Config{
		Type: "MySQL", Host: my.Host, Port: my.Port, Database: my.Database, Username: my.User, Password: my.Password, TLS: "Disable",
		MaxConnections: 4, StatementTimeout: 10 * time.Second, LockTimeout: 5 * time.Second,
	}}
}

// open opens a fresh driver (a restarted manager has no cached schema).
func (st *store) open(ctx context.Context) (datastore.Driver, error) {
	if st.kind == retentionv1.DataStorePostgreSQL {
		return postgres.New(ctx, st.cfg)
	}
	return mysql.New(ctx, st.cfg)
}

func (st *store) pg() bool { return st.kind == retentionv1.DataStorePostgreSQL }

func (st *store) exec(ctx context.Context, q string, args ...any) error {
	_, err := st.db.ExecContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("%s: %w", strings.SplitN(q, "\n", 2)[0], err)
	}
	return nil
}

// reset drops every table of the previous case.
func (st *store) reset(ctx context.Context) error {
	if st.pg() {
		return st.exec(ctx, "DROP SCHEMA public CASCADE; CREATE SCHEMA public")
	}
	rows, err := st.db.QueryContext(ctx, "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()")
	if err != nil {
		return err
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return err
		}
		names = append(names, "`"+n+"`")
	}
	rows.Close()
	if len(names) == 0 {
		return nil
	}
	conn, err := st.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SET FOREIGN_KEY_CHECKS = 0"); err != nil {
		return err
	}
	_, err = conn.ExecContext(ctx, "DROP TABLE "+strings.Join(names, ", "))
	_, _ = conn.ExecContext(ctx, "SET FOREIGN_KEY_CHECKS = 1")
	return err
}

// create makes the tables and loads the rows.
func (st *store) create(ctx context.Context, s *schema) error {
	for _, t := range s.tables {
		var cols, cons []string
		text, ts := "text", "timestamptz"
		if !st.pg() {
			text, ts = "varchar(100)", "datetime(6)"
		}
		cols = append(cols, "id bigint NOT NULL")
		key := "id"
		if t.composite {
			cols = append(cols, "part bigint NOT NULL")
			key = "id, part"
		}
		if t.user {
			cols = append(cols, "user_id bigint NULL")
		}
		if t.mail {
			cols = append(cols, "email "+text+" NULL")
		}
		for i, r := range t.refs {
			null := " NOT NULL"
			if r.nullable {
				null = " NULL"
			}
			for _, c := range r.cols {
				cols = append(cols, c+" bigint"+null)
			}
			target := "id"
			if s.tables[r.parent].composite {
				target = "id, part"
			}
			cons = append(cons, fmt.Sprintf("CONSTRAINT %s_fk%d FOREIGN KEY (%s) REFERENCES %s (%s) ON DELETE %s",
				t.name, i, strings.Join(r.cols, ", "), s.tables[r.parent].name, target, r.onDelete))
		}
		if t.ts {
			cols = append(cols, "ts "+ts+" NOT NULL")
		}
		cols = append(cols, "note "+text+" NOT NULL", "PRIMARY KEY ("+key+")")
		if err := st.exec(ctx, "CREATE TABLE "+t.name+" (\n"+strings.Join(append(cols, cons...), ",\n")+")"); err != nil {
			return err
		}
		if len(t.rows) == 0 {
			continue
		}
		names := t.columns()
		var vals []string
		var args []any
		for _, r := range t.rows {
			var ph []string
			for _, c := range names {
				args = append(args, r.value(c))
				if st.pg() {
					ph = append(ph, fmt.Sprintf("$%d", len(args)))
				} else {
					ph = append(ph, "?")
				}
			}
			vals = append(vals, "("+strings.Join(ph, ", ")+")")
		}
		if err := st.exec(ctx, "INSERT INTO "+t.name+" ("+strings.Join(names, ", ")+") VALUES "+strings.Join(vals, ", "), args...); err != nil {
			return err
		}
	}
	return nil
}

func (r *genRow) value(col string) any {
	switch col {
	case "id":
		return r.id
	case "part":
		return r.part
	case "user_id":
		if r.user == nil {
			return nil
		}
		return *r.user
	case "email":
		if r.mail == nil {
			return nil
		}
		return *r.mail
	case "ts":
		return r.ts
	case "note":
		return r.note
	}
	if v := r.fk[col]; v != nil {
		return *v
	}
	return nil
}

// snapshot reads every row of every table back: table → key → column → text
// ("<null>" for NULL).
func (st *store) snapshot(ctx context.Context, s *schema) (map[string]map[string]map[string]string, error) {
	out := map[string]map[string]map[string]string{}
	for _, t := range s.tables {
		names := t.columns()
		sel := make([]string, len(names))
		for i, c := range names {
			if st.pg() {
				sel[i] = c + "::text"
			} else {
				sel[i] = "CAST(" + c + " AS CHAR)"
			}
		}
		rows, err := st.db.QueryContext(ctx, "SELECT "+strings.Join(sel, ", ")+" FROM "+t.name)
		if err != nil {
			return nil, err
		}
		out[t.name] = map[string]map[string]string{}
		for rows.Next() {
			vals := make([]sql.NullString, len(names))
			dest := make([]any, len(names))
			for i := range vals {
				dest[i] = &vals[i]
			}
			if err := rows.Scan(dest...); err != nil {
				rows.Close()
				return nil, err
			}
			row := map[string]string{}
			for i, c := range names {
				row[c] = "<null>"
				if vals[i].Valid {
					row[c] = vals[i].String
				}
			}
			key := row["id"]
			if t.composite {
				key += "|" + row["part"]
			}
			out[t.name][key] = row
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}
