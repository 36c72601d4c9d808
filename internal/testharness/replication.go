package testharness

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lethe-dev/lethe/internal/servers"
)

// PostgresStandby is a PostgreSQL streaming standby of a test's own primary.
type PostgresStandby struct {
	// Server connects to the standby (read only) as a superuser; Exec runs
	// SELECT pg_wal_replay_pause() and pg_wal_replay_resume() there.
	Server *servers.Postgres
	// Primary connects to the primary's maintenance database as a
	// superuser.
	Primary *servers.Postgres
}

// PostgresWithStandby starts a PostgreSQL primary of the test's own, with
// WAL streaming, and a standby following it on 127.0.0.1 (pg_basebackup and
// a second server; o names it and may delay its replay), and returns a
// fresh database on the primary (which the standby replicates). Both
// servers run until the test process ends.
func PostgresWithStandby(tb testing.TB, o servers.StandbyOptions) (PG, PostgresStandby) {
	tb.Helper()
	requireMain(tb)
	g, err := theGroup()
	if err != nil {
		tb.Fatalf("testharness: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	t0 := time.Now()
	primary, err := g.StartPostgres(ctx, servers.PostgresOptions{Replication: true})
	if err != nil {
		tb.Fatalf("testharness: PostgreSQL primary: %v", orSet(err, "nothing: a standby needs a primary of the test's own"))
	}
	tb.Cleanup(primary.Close)
	standby, err := g.StartPostgresStandby(ctx, primary, o)
	if err != nil {
		tb.Fatalf("testharness: PostgreSQL standby: %v", err)
	}
	tb.Cleanup(standby.Close)
	name := uniqueName(tb, "lethe", '_', 63)
	if err := primary.CreateDatabase(ctx, name); err != nil {
		tb.Fatalf("testharness: PostgreSQL: creating database %s: %v", name, err)
	}
	// The database exists on the standby once the standby has replayed its
	// creation: wait for that, so a test can connect to both at once.
	for {
		c, err := pgx.Connect(ctx, standby.URL(name))
		if err == nil {
			_ = c.Close(ctx)
			break
		}
		if ctx.Err() != nil {
			tb.Fatalf("testharness: PostgreSQL standby: database %s never replicated: %v", name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	tb.Logf("testharness: PostgreSQL primary (port %d) and standby (port %d) ready in %v", primary.Port, standby.Port, time.Since(t0).Round(time.Millisecond))
	return PG{Host: primary.Host, Port: primary.Port, User: primary.User, Password: primary.Password, Database: name, DSN: primary.URL(name)},
		PostgresStandby{Server: standby, Primary: primary}
}

// MariaDBWithReplica starts a MariaDB primary of the test's own, with its
// binary log on, and a replica following it on 127.0.0.1, and returns a
// fresh database on the primary (which the replica replicates) and the
// replica (Exec runs STOP SLAVE SQL_THREAD and the like there). Both
// servers run until the test process ends.
func MariaDBWithReplica(tb testing.TB) (MySQL, *servers.MariaDB) {
	tb.Helper()
	requireMain(tb)
	g, err := theGroup()
	if err != nil {
		tb.Fatalf("testharness: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	t0 := time.Now()
	primary, err := g.StartMariaDBWith(ctx, servers.MariaDBOptions{LogBin: true})
	if err != nil {
		tb.Fatalf("testharness: MariaDB primary: %v", err)
	}
	tb.Cleanup(primary.Close)
	replica, err := g.StartMariaDBReplica(ctx, primary, 2)
	if err != nil {
		tb.Fatalf("testharness: MariaDB replica: %v", err)
	}
	tb.Cleanup(replica.Close)
	name := uniqueName(tb, "lethe", '_', 64)
	if err := primary.CreateDatabase(ctx, name); err != nil {
		tb.Fatalf("testharness: MariaDB: creating database %s: %v", name, err)
	}
	tb.Logf("testharness: MariaDB primary (port %d) and replica (port %d) ready in %v", primary.Port, replica.Port, time.Since(t0).Round(time.Millisecond))
	return MySQL{Host: primary.Host, Port: primary.Port, User: primary.User, Password: primary.Password, Database: name, DSN: primary.DSN(name)}, replica
}

// PostgresOwn starts a PostgreSQL server of the test's own (which the test
// may stop and start again: Server.Stop, Server.Start) and returns a fresh
// database on it. The server runs until the test process ends.
func PostgresOwn(tb testing.TB) (PG, *servers.Postgres) {
	tb.Helper()
	requireMain(tb)
	g, err := theGroup()
	if err != nil {
		tb.Fatalf("testharness: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := g.StartPostgres(ctx, servers.PostgresOptions{})
	if err != nil {
		tb.Fatalf("testharness: PostgreSQL: %v", err)
	}
	tb.Cleanup(srv.Close)
	name := uniqueName(tb, "lethe", '_', 63)
	if err := srv.CreateDatabase(ctx, name); err != nil {
		tb.Fatalf("testharness: PostgreSQL: creating database %s: %v", name, err)
	}
	return PG{Host: srv.Host, Port: srv.Port, User: srv.User, Password: srv.Password, Database: name, DSN: srv.URL(name)}, srv
}
