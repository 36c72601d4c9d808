package postgres_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/datastore/postgres"
	"github.com/lethe-dev/lethe/internal/servers"
	"github.com/lethe-dev/lethe/internal/testharness"
)

// waitHealth reads the health until ok says it is what the test waits for.
func waitHealth(t *testing.T, d *postgres.Driver, q datastore.HealthQuery, what string, ok func(datastore.Health) bool) datastore.Health {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		h, err := d.Health(context.Background(), q)
		if err != nil {
			t.Fatalf("Health: %v", err)
		}
		if ok(h) {
			return h
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: last reading %+v", what, h)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// The primary's pg_stat_replication shows a standby's lag in bytes while
// its replay is paused (replay_lag does not grow then), and nothing once it
// has caught up; a user without pg_monitor sees no state, which is a
// Problem saying what to grant, never a healthy reading.
//
// The standby reports as a production one does (wal_receiver_status_interval
// 10s, PostgreSQL's default): when WAL arrives, every 10s otherwise, and
// once it has replayed all it received — so a throttled purge sees a
// standby that has caught up at its next reading, not up to 10s later.
func TestHealthReplication(t *testing.T) {
	pg, sb := testharness.PostgresWithStandby(t, servers.StandbyOptions{Name: "s1", StatusInterval: 10 * time.Second})
	ctx := context.Background()
	admin, err := pgxpool.New(ctx, pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	e := &env{t: t, pg: pg, admin: admin}
	d := e.driver()
	q := datastore.HealthQuery{Replication: true}
	h := waitHealth(t, d, q, "a streaming standby", func(h datastore.Health) bool {
		return len(h.Replicas) == 1 && h.Replicas[0].BytesKnown && h.Replicas[0].LagBytes == 0
	})
	if r := h.Replicas[0]; !strings.Contains(r.Name, `"s1"`) || r.Problem != "" || h.ActiveSessions != -1 {
		t.Fatalf("reading %+v", h)
	}
	if h, err := d.Health(ctx, datastore.HealthQuery{Replication: true, IgnoredStandbys: []string{"s1"}}); err != nil || len(h.Replicas) != 0 {
		t.Fatalf("ignored standby still read: %+v, %v", h, err)
	}

	if err := sb.Server.Exec(ctx, `SELECT pg_wal_replay_pause()`); err != nil {
		t.Fatal(err)
	}
	e.exec(`CREATE TABLE filler AS SELECT i, repeat('x', 200) AS pad FROM generate_series(1, 20000) i`)
	h = waitHealth(t, d, q, "the paused standby's lag in bytes", func(h datastore.Health) bool {
		return len(h.Replicas) == 1 && h.Replicas[0].LagBytes > 1<<20
	})
	t.Logf("paused standby: %+v", h.Replicas[0])

	// Without pg_monitor the state is hidden: a Problem naming the grant.
	e.exec(`CREATE ROLE plain LOGIN PASSWORD 'plain-pw'`)
	e.exec(`GRANT CONNECT ON DATABASE ` + pgx.Identifier{pg.Database}.Sanitize() + ` TO plain`)
	cfg := e.cfg()
	cfg.Username, cfg.Password = "plain", "plain-pw"
	plain := e.driverWith(cfg)
	h, err = plain.Health(ctx, datastore.HealthQuery{Replication: true, Sessions: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Replicas) != 1 || !strings.Contains(h.Replicas[0].Problem, "GRANT pg_monitor") || h.Replicas[0].BytesKnown {
		t.Fatalf("without pg_monitor: %+v", h)
	}
	e.exec(`GRANT pg_monitor TO plain`)
	h = waitHealth(t, plain, q, "the lag with pg_monitor", func(h datastore.Health) bool {
		return len(h.Replicas) == 1 && h.Replicas[0].Problem == "" && h.Replicas[0].LagBytes > 1<<20
	})

	if err := sb.Server.Exec(ctx, `SELECT pg_wal_replay_resume()`); err != nil {
		t.Fatal(err)
	}
	resumed := time.Now()
	for {
		h, err := d.Health(ctx, q)
		if err != nil {
			t.Fatalf("Health: %v", err)
		}
		if len(h.Replicas) == 1 && h.Replicas[0].BytesKnown && h.Replicas[0].LagBytes == 0 {
			t.Logf("caught up, as the primary sees it, %v after replay resumed", time.Since(resumed).Round(time.Millisecond))
			break
		}
		if time.Since(resumed) > 5*time.Second {
			t.Fatalf("the primary still sees the standby behind %v after it resumed: %+v", time.Since(resumed).Round(time.Millisecond), h.Replicas)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Active sessions and lock waiters are counted, Lethe's own sessions not;
// a user without pg_monitor cannot count other users' sessions: a Problem.
func TestHealthSessions(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	d := e.driver()
	q := datastore.HealthQuery{Sessions: true}
	before, err := d.Health(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if before.ActiveSessions < 0 || before.LockWaiters < 0 || len(before.Problems) > 0 || len(before.Replicas) != 0 {
		t.Fatalf("idle: %+v", before)
	}
	e.exec(`CREATE TABLE locked (id int)`)
	const sleepers, waiters = 6, 3
	var wg sync.WaitGroup
	sctx, cancel := context.WithCancel(ctx)
	defer func() { cancel(); wg.Wait() }()
	session := func(sql string) {
		defer wg.Done()
		c, err := pgx.Connect(sctx, e.pg.DSN)
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		_, _ = c.Exec(sctx, sql)
	}
	for range sleepers {
		wg.Add(1)
		go session(`SELECT pg_sleep(30)`)
	}
	holder, err := pgx.Connect(ctx, e.pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close(ctx)
	tx, err := holder.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `LOCK TABLE locked IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	for range waiters {
		wg.Add(1)
		go session(`SELECT count(*) FROM locked`)
	}
	h := waitHealth(t, d, q, "the sleepers and lock waiters", func(h datastore.Health) bool {
		return h.ActiveSessions >= before.ActiveSessions+sleepers+waiters && h.LockWaiters >= waiters
	})
	t.Logf("idle %+v, loaded %+v", before, h)

	e.exec(`CREATE ROLE plain2 LOGIN PASSWORD 'plain-pw'`)
	cfg := e.cfg()
	cfg.Username, cfg.Password = "plain2", "plain-pw"
	h, err = e.driverWith(cfg).Health(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if h.ActiveSessions != -1 || len(h.Problems) != 1 || !strings.Contains(h.Problems[0], "GRANT pg_monitor") {
		t.Fatalf("without pg_monitor: %+v", h)
	}
}
