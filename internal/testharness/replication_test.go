package testharness_test

import (
	"database/sql"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"

	"github.com/lethe-dev/lethe/internal/servers"
	"github.com/lethe-dev/lethe/internal/testharness"
)

// A standby follows its primary: a table created on the primary appears on
// the standby, and replay can be paused and resumed.
func TestPostgresWithStandby(t *testing.T) {
	pg, sb := testharness.PostgresWithStandby(t, servers.StandbyOptions{Name: "s1"})
	c := ctx(t)
	conn, err := pgx.Connect(c, pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(c)
	if _, err := conn.Exec(c, `CREATE TABLE t AS SELECT 1 AS x`); err != nil {
		t.Fatal(err)
	}
	var name, state string
	deadline := time.Now().Add(30 * time.Second)
	for conn.QueryRow(c, `SELECT application_name, state FROM pg_stat_replication`).Scan(&name, &state) != nil || state != "streaming" {
		if time.Now().After(deadline) {
			t.Fatalf("no streaming standby in pg_stat_replication (%q %q)", name, state)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if name != "s1" {
		t.Errorf("application_name %q, want s1", name)
	}
	standby, err := pgx.Connect(c, sb.Server.URL(pg.Database))
	if err != nil {
		t.Fatal(err)
	}
	defer standby.Close(c)
	var n int
	for standby.QueryRow(c, `SELECT count(*) FROM t`).Scan(&n) != nil {
		if time.Now().After(deadline) {
			t.Fatal("the table never reached the standby")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := sb.Server.Exec(c, `SELECT pg_wal_replay_pause()`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(c, `INSERT INTO t SELECT generate_series(1, 10000)`); err != nil {
		t.Fatal(err)
	}
	var lagBytes float64
	for {
		if err := conn.QueryRow(c, `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::float8 FROM pg_stat_replication`).Scan(&lagBytes); err != nil {
			t.Fatal(err)
		}
		if lagBytes > 100_000 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if lagBytes < 100_000 {
		t.Fatalf("paused standby lags %v bytes", lagBytes)
	}
	if err := sb.Server.Exec(c, `SELECT pg_wal_replay_resume()`); err != nil {
		t.Fatal(err)
	}
}

// A replica follows its primary.
func TestMariaDBWithReplica(t *testing.T) {
	my, replica := testharness.MariaDBWithReplica(t)
	c := ctx(t)
	db, err := sql.Open("mysql", my.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(c, `CREATE TABLE t (x int PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(c, `INSERT INTO t VALUES (1), (2)`); err != nil {
		t.Fatal(err)
	}
	rdb, err := sql.Open("mysql", replica.DSN(my.Database))
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	deadline := time.Now().Add(30 * time.Second)
	var n int
	for rdb.QueryRowContext(c, `SELECT count(*) FROM t`).Scan(&n) != nil || n != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the rows never reached the replica (%d)", n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
