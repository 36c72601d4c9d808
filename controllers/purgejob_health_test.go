package controllers_test

import (
	"context"
	"database/sql"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/controllers"
	"github.com/lethe-dev/lethe/internal/metrics"
	"github.com/lethe-dev/lethe/internal/servers"
	"github.com/lethe-dev/lethe/internal/testharness"
)

// storeOn creates DataStore name (and its credentials Secret) for pg.
func storeOn(t *testing.T, ns, name string, pg testharness.PG, edit func(*retentionv1.DataStoreSpec)) {
	t.Helper()
	create(t, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-credentials", Labels: marked()},
		StringData: map[string]string{"username": pg.User, "password": pg.Password},
	})
	store := &retentionv1.DataStore{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: retentionv1.DataStoreSpec{
			Type: retentionv1.DataStorePostgreSQL, Host: pg.Host, Port: ptr.To(int32(pg.Port)),
			Database: retentionv1.Identifier(pg.Database), TLS: retentionv1.TLSDisable,
			CredentialsSecretRef: &retentionv1.SecretReference{Name: name + "-credentials"},
		},
	}
	if edit != nil {
		edit(&store.Spec)
	}
	create(t, store)
}

func throttledAs(reason string) func(*retentionv1.PurgeJob) bool {
	return func(j *retentionv1.PurgeJob) bool {
		c := condition(j, retentionv1.ConditionThrottled)
		return c != nil && c.Status == metav1.ConditionTrue && c.Reason == reason
	}
}

// holdsStill checks that a throttled job runs no batch for a while.
func holdsStill(t *testing.T, key *retentionv1.PurgeJob, d time.Duration) *retentionv1.PurgeJob {
	t.Helper()
	before := waitFor(t, key, time.Second, "the job", func(*retentionv1.PurgeJob) bool { return true }).Status.Deleted
	time.Sleep(d)
	after := waitFor(t, key, time.Second, "the job", func(*retentionv1.PurgeJob) bool { return true })
	if after.Status.Deleted != before {
		t.Fatalf("a throttled job ran batches: %d deleted, then %d", before, after.Status.Deleted)
	}
	return after
}

// A standby whose replay is paused makes a running purge wait at a batch
// boundary (its WAL not replayed grows over maxReplicationLagBytes; its
// replay_lag does not grow while paused), with the PurgeJob's and the
// DataStore's Throttled condition showing the lag and the limit; once
// replay resumes and the standby catches up, the job runs on and
// completes.
func TestPurgeJobThrottlesOnPausedStandby(t *testing.T) {
	startManager(t, controllers.Options{})
	ns := namespace(t)
	pg, sb := testharness.PostgresWithStandby(t, servers.StandbyOptions{Name: "replica1"})
	storeOn(t, ns, "db", pg, func(s *retentionv1.DataStoreSpec) {
		// 80 batches at 5/s: the job still runs when, on a loaded machine,
		// the standby has paused and reported it seconds later.
		s.Limits.MaxBatchesPerSecond = 5
		s.Limits.Health.CheckInterval = "200ms"
		s.Limits.Health.MaxReplicationLagBytes = ptr.To(resource.MustParse("16Ki"))
		// The WAL not replayed is what this test watches, not the lag
		// in time estimated from it (0: no limit).
		s.Limits.Health.MaxReplicationLag = "0"
	})
	conn := seedEvents(t, pg, 6000, 4000)
	// Wide rows, so each batch writes WAL enough to be seen.
	mustExec(t, conn, `ALTER TABLE events ADD COLUMN pad text`)
	mustExec(t, conn, `UPDATE events SET pad = repeat('x', 500)`)
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hmac", Labels: marked()}, StringData: map[string]string{"key": hmacKey}})
	create(t, eventsDataset(ns))
	ctx := context.Background()

	job := deleteJob(ns, "lagged", retentionv1.ModeEnforce)
	job.Spec.BatchSize = 50
	createJob(t, job)
	key := &retentionv1.PurgeJob{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "lagged"}}
	waitFor(t, key, 60*time.Second, "a few batches", func(j *retentionv1.PurgeJob) bool { return j.Status.Deleted >= 200 })
	metric := metrics.ThrottledSeconds.WithLabelValues(ns, "db", retentionv1.ReasonReplicationLag)
	before := testutil.ToFloat64(metric)

	if err := sb.Server.Exec(ctx, `SELECT pg_wal_replay_pause()`); err != nil {
		t.Fatal(err)
	}
	// pg_wal_replay_pause only requests the pause: wait until replay has
	// stopped, or the lag may fall back under the limit once more.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var state string
		if c, err := pgx.Connect(ctx, sb.Server.URL("postgres")); err == nil {
			_ = c.QueryRow(ctx, `SELECT pg_get_wal_replay_pause_state()`).Scan(&state)
			_ = c.Close(ctx)
		}
		if state == "paused" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the standby's replay did not pause (state %q)", state)
		}
	}
	// The primary sees the replay position the standby last reported: wait
	// until that is where replay paused, or a throttle on an older report
	// may lift when the standby reports what it replayed before pausing.
	var paused string
	if c, err := pgx.Connect(ctx, sb.Server.URL("postgres")); err == nil {
		_ = c.QueryRow(ctx, `SELECT pg_last_wal_replay_lsn()::text`).Scan(&paused)
		_ = c.Close(ctx)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var reported string
		_ = conn.QueryRow(ctx, `SELECT coalesce(max(replay_lsn)::text, '') FROM pg_stat_replication WHERE application_name = 'replica1'`).Scan(&reported)
		if paused != "" && reported == paused {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the primary never saw the standby's paused replay position %q (last %q)", paused, reported)
		}
	}
	throttled := waitFor(t, key, 60*time.Second, "Throttled ReplicationLag", throttledAs(retentionv1.ReasonReplicationLag))
	msg := condition(throttled, retentionv1.ConditionThrottled).Message
	t.Logf("throttled after %d deleted: %s", throttled.Status.Deleted, msg)
	if !strings.Contains(msg, `"replica1"`) || !strings.Contains(msg, "of WAL not replayed") || !strings.Contains(msg, "limit maxReplicationLagBytes 16KiB") {
		t.Errorf("the condition does not show the lag and the limit: %s", msg)
	}
	if throttled.Status.Phase != retentionv1.PurgeJobRunning || throttled.Status.Deleted >= 4000 {
		t.Fatalf("throttled job: phase %s, %d deleted", throttled.Status.Phase, throttled.Status.Deleted)
	}
	holdsStill(t, key, 2*time.Second)
	store := waitFor(t, &retentionv1.DataStore{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db"}}, 30*time.Second, "the DataStore Throttled",
		func(d *retentionv1.DataStore) bool {
			c := condition(d, retentionv1.ConditionThrottled)
			return c != nil && c.Status == metav1.ConditionTrue && c.Reason == retentionv1.ReasonReplicationLag
		})
	if c := condition(store, retentionv1.ConditionThrottled); !strings.Contains(c.Message, "limit maxReplicationLagBytes") {
		t.Errorf("DataStore condition %+v", c)
	}

	if err := sb.Server.Exec(ctx, `SELECT pg_wal_replay_resume()`); err != nil {
		t.Fatal(err)
	}
	done := waitPhase(t, ns, "lagged", retentionv1.PurgeJobSucceeded)
	if done.Status.Deleted != 4000 || count(t, conn, `SELECT count(*) FROM events`) != 2000 {
		t.Fatalf("deleted %d; want every expired row and no other", done.Status.Deleted)
	}
	if !hasCondition(done, retentionv1.ConditionThrottled, metav1.ConditionFalse, retentionv1.ReasonNotThrottled) {
		t.Errorf("finished: Throttled %+v", condition(done, retentionv1.ConditionThrottled))
	}
	if got := testutil.ToFloat64(metric) - before; got < 1 {
		t.Errorf("lethe_throttled_seconds_total{reason=ReplicationLag} grew by %.2f, want at least the 2s the job was held", got)
	}
	waitFor(t, &retentionv1.DataStore{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db"}}, 30*time.Second, "the DataStore healthy again",
		func(d *retentionv1.DataStore) bool {
			c := condition(d, retentionv1.ConditionThrottled)
			return c != nil && c.Status == metav1.ConditionFalse && c.Reason == retentionv1.ReasonHealthy
		})
}

// A standby that replays 3s late (recovery_min_apply_delay) lags over a
// maxReplicationLag of 1s while the purge writes: the job waits with the
// lag in time; once writes stop the standby catches up and the job goes on
// and completes.
func TestPurgeJobThrottlesOnDelayedStandby(t *testing.T) {
	startManager(t, controllers.Options{})
	ns := namespace(t)
	pg, _ := testharness.PostgresWithStandby(t, servers.StandbyOptions{Name: "late", ApplyDelay: 3 * time.Second})
	storeOn(t, ns, "db", pg, func(s *retentionv1.DataStoreSpec) {
		s.Limits.MaxBatchesPerSecond = 20
		s.Limits.Health.CheckInterval = "200ms"
		s.Limits.Health.MaxReplicationLag = "1s"
	})
	conn := seedEvents(t, pg, 1000, 600)
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hmac", Labels: marked()}, StringData: map[string]string{"key": hmacKey}})
	create(t, eventsDataset(ns))
	job := deleteJob(ns, "late", retentionv1.ModeEnforce)
	job.Spec.BatchSize = 20
	createJob(t, job)
	key := &retentionv1.PurgeJob{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "late"}}
	throttled := waitFor(t, key, 60*time.Second, "Throttled ReplicationLag", throttledAs(retentionv1.ReasonReplicationLag))
	msg := condition(throttled, retentionv1.ConditionThrottled).Message
	t.Logf("throttled after %d deleted: %s", throttled.Status.Deleted, msg)
	if !strings.Contains(msg, `"late"`) || !strings.Contains(msg, "limit maxReplicationLag 1s") {
		t.Errorf("the condition does not show the lag and the limit: %s", msg)
	}
	done := waitFor(t, key, 120*time.Second, "Succeeded", func(j *retentionv1.PurgeJob) bool { return j.Status.Phase == retentionv1.PurgeJobSucceeded })
	if done.Status.Deleted != 600 || count(t, conn, `SELECT count(*) FROM events`) != 400 {
		t.Fatalf("deleted %d", done.Status.Deleted)
	}
}

// Many active sessions (a load generator of connections running pg_sleep)
// over maxActiveSessions hold the purge back; when they end it runs on.
// Lock waiters over maxLockWaiters likewise.
func TestPurgeJobThrottlesOnSessionsAndLockWaiters(t *testing.T) {
	// Status written every 100ms, not every 5s: the test reacts to what the
	// status shows while the job still has work left.
	startManager(t, controllers.Options{PurgeJobCheckpointInterval: 100 * time.Millisecond})
	ns := namespace(t)
	pg := postgresStoreWith(t, ns, "db", func(s *retentionv1.DataStoreSpec) {
		s.Limits.MaxBatchesPerSecond = 10
		s.Limits.Health.CheckInterval = "200ms"
		s.Limits.Health.MaxActiveSessions = 4
		s.Limits.Health.MaxLockWaiters = 2
	})
	conn := seedEvents(t, pg, 2000, 1200)
	mustExec(t, conn, `CREATE TABLE other (id int)`)
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hmac", Labels: marked()}, StringData: map[string]string{"key": hmacKey}})
	create(t, eventsDataset(ns))
	job := deleteJob(ns, "busy", retentionv1.ModeEnforce)
	job.Spec.BatchSize = 10
	createJob(t, job)
	key := &retentionv1.PurgeJob{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "busy"}}
	waitFor(t, key, 60*time.Second, "a few batches", func(j *retentionv1.PurgeJob) bool { return j.Status.Deleted >= 30 })

	load := func(n int, stmt string) (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := pgx.Connect(ctx, pg.DSN)
				if err != nil {
					return
				}
				defer c.Close(context.Background())
				_, _ = c.Exec(ctx, stmt)
			}()
		}
		return func() { cancel(); wg.Wait() }
	}
	stop := load(8, `SELECT pg_sleep(60)`)
	throttled := waitFor(t, key, 60*time.Second, "Throttled ActiveSessions", throttledAs(retentionv1.ReasonActiveSessions))
	if msg := condition(throttled, retentionv1.ConditionThrottled).Message; !strings.Contains(msg, "(limit maxActiveSessions 4)") {
		t.Errorf("message %q", msg)
	}
	holdsStill(t, key, time.Second)
	stop()
	waitFor(t, key, 60*time.Second, "running again", func(j *retentionv1.PurgeJob) bool {
		return hasCondition(j, retentionv1.ConditionThrottled, metav1.ConditionFalse, retentionv1.ReasonNotThrottled)
	})

	tx, err := conn.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	if _, err := tx.Exec(context.Background(), `LOCK TABLE other IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	stop = load(3, `SELECT count(*) FROM other`)
	throttled = waitFor(t, key, 60*time.Second, "Throttled LockWaiters", throttledAs(retentionv1.ReasonLockWaiters))
	if msg := condition(throttled, retentionv1.ConditionThrottled).Message; !strings.Contains(msg, "3 sessions wait for a lock (limit maxLockWaiters 2)") {
		t.Errorf("message %q", msg)
	}
	_ = tx.Rollback(context.Background())
	stop()
	done := waitPhase(t, ns, "busy", retentionv1.PurgeJobSucceeded)
	if done.Status.Deleted != 1200 {
		t.Fatalf("deleted %d", done.Status.Deleted)
	}
}

// A store whose health cannot be read is unhealthy: with the DataStore's
// user lacking pg_monitor, a standby's state is hidden and the job waits
// with HealthUnknown, saying what to grant; granting it lets the job run.
func TestPurgeJobWaitsWhenHealthIsUnknown(t *testing.T) {
	startManager(t, controllers.Options{})
	ns := namespace(t)
	pg, _ := testharness.PostgresWithStandby(t, servers.StandbyOptions{Name: "hidden"})
	conn := seedEvents(t, pg, 300, 200)
	mustExec(t, conn, `CREATE ROLE purger LOGIN PASSWORD 'purger-pw'`)
	mustExec(t, conn, `GRANT SELECT, DELETE ON events TO purger`)
	limited := pg
	limited.User, limited.Password = "purger", "purger-pw"
	storeOn(t, ns, "db", limited, func(s *retentionv1.DataStoreSpec) {
		s.Limits.Health.CheckInterval = "200ms"
	})
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hmac", Labels: marked()}, StringData: map[string]string{"key": hmacKey}})
	create(t, eventsDataset(ns))
	job := deleteJob(ns, "blind", retentionv1.ModeEnforce)
	job.Spec.BatchSize = 20
	createJob(t, job)
	key := &retentionv1.PurgeJob{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "blind"}}
	throttled := waitFor(t, key, 60*time.Second, "Throttled HealthUnknown", throttledAs(retentionv1.ReasonHealthUnknown))
	msg := condition(throttled, retentionv1.ConditionThrottled).Message
	if !strings.Contains(msg, "GRANT pg_monitor") || !strings.Contains(msg, `"hidden"`) {
		t.Errorf("message %q", msg)
	}
	if throttled.Status.Deleted != 0 {
		t.Fatalf("%d deleted while the health was unknown", throttled.Status.Deleted)
	}
	mustExec(t, conn, `GRANT pg_monitor TO purger`)
	done := waitPhase(t, ns, "blind", retentionv1.PurgeJobSucceeded)
	if done.Status.Deleted != 200 {
		t.Fatalf("deleted %d", done.Status.Deleted)
	}
}

// A MariaDB replica whose SQL thread is stopped (read on the replica, as
// pt-archiver's --check-slave-lag) holds the purge back; started again, it
// catches up and the job completes.
func TestPurgeJobThrottlesOnStoppedMariaDBReplica(t *testing.T) {
	startManager(t, controllers.Options{})
	ns := namespace(t)
	my, replica := testharness.MariaDBWithReplica(t)
	db, err := sql.Open("mysql", my.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range []string{
		`CREATE TABLE events (id bigint PRIMARY KEY, user_id varchar(20) NOT NULL, email varchar(100), ts datetime(6) NOT NULL)`,
		`INSERT INTO events SELECT seq, seq % 10, concat('user', seq, '@example.com'), timestamp'2026-06-01 12:00:00' + interval (CAST(seq AS SIGNED) - 601) minute FROM seq_1_to_1000`,
	} {
		if _, err := db.Exec(s); err != nil {
			t.Fatal(err)
		}
	}
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db-credentials", Labels: marked()},
		StringData: map[string]string{"username": my.User, "password": my.Password}})
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "replica-credentials", Labels: marked()},
		StringData: map[string]string{"username": replica.User, "password": replica.Password}})
	create(t, &retentionv1.DataStore{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db"}, Spec: retentionv1.DataStoreSpec{
		Type: retentionv1.DataStoreMySQL, Host: my.Host, Port: ptr.To(int32(my.Port)), Database: retentionv1.Identifier(my.Database),
		TLS: retentionv1.TLSDisable, CredentialsSecretRef: &retentionv1.SecretReference{Name: "db-credentials"},
		Limits: retentionv1.DataStoreLimits{MaxBatchesPerSecond: 10, Health: retentionv1.DataStoreHealth{
			CheckInterval: "200ms", MaxReplicationLag: "5s",
			Replicas: []retentionv1.MySQLReplica{{Host: replica.Host, Port: ptr.To(int32(replica.Port)),
				CredentialsSecretRef: &retentionv1.SecretReference{Name: "replica-credentials"}}},
		}},
	}})
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hmac", Labels: marked()}, StringData: map[string]string{"key": hmacKey}})
	create(t, eventsDataset(ns))
	job := deleteJob(ns, "replicated", retentionv1.ModeEnforce)
	job.Spec.BatchSize = 10
	createJob(t, job)
	key := &retentionv1.PurgeJob{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "replicated"}}
	waitFor(t, key, 60*time.Second, "a few batches", func(j *retentionv1.PurgeJob) bool { return j.Status.Deleted >= 30 })

	ctx := context.Background()
	if err := replica.Exec(ctx, "STOP SLAVE SQL_THREAD"); err != nil {
		t.Fatal(err)
	}
	throttled := waitFor(t, key, 60*time.Second, "Throttled ReplicationLag", throttledAs(retentionv1.ReasonReplicationLag))
	msg := condition(throttled, retentionv1.ConditionThrottled).Message
	t.Logf("throttled after %d deleted: %s", throttled.Status.Deleted, msg)
	if !strings.Contains(msg, "is not replicating") {
		t.Errorf("message %q", msg)
	}
	holdsStill(t, key, time.Second)
	if err := replica.Exec(ctx, "START SLAVE SQL_THREAD"); err != nil {
		t.Fatal(err)
	}
	done := waitPhase(t, ns, "replicated", retentionv1.PurgeJobSucceeded)
	if done.Status.Deleted != 600 {
		t.Fatalf("deleted %d", done.Status.Deleted)
	}
	// The replica has the same rows as the primary.
	rdb, err := sql.Open("mysql", replica.DSN(my.Database))
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	waitFor(t, key, 30*time.Second, "the replica caught up", func(*retentionv1.PurgeJob) bool {
		var n int
		return rdb.QueryRow(`SELECT count(*) FROM events`).Scan(&n) == nil && n == 400
	})
}
