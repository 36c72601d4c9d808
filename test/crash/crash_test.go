// Package crash kills the manager binary with SIGKILL (kill -9) at random
// moments while it purges real PostgreSQL tables, restarts it each time, and
// checks that every job ends with totals equal to what was truly deleted
// (read back with SQL), no expired row left, no newer row touched, and its
// counts verified (CountsVerified True): batches committed after the last
// checkpoint are recounted by the next manager (internal/executor,
// recount.go). Jobs alternate between checkpoints every second and every
// 5 s (the default).
//
// LETHE_CRASH_KILLS sets the number of kills (default 30); LETHE_CRASH_SEED
// the random seed (default: the time; the test logs it).
package crash

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/managerproc"
	"github.com/lethe-dev/lethe/internal/signature"
	"github.com/lethe-dev/lethe/internal/testenv"
	"github.com/lethe-dev/lethe/internal/testharness"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	var err error
	if env, err = testenv.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := testharness.Run(m)
	_ = env.Stop()
	os.Exit(code)
}

var digestKey = []byte("crash-digest-key-0123456789abcdef0123")

// The cutoff; each table has `expired` rows before it and `newer` after.
var cutoff = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

const (
	expired = 40000
	newer   = 5000
	// A batch of 200 rows at most 30 times a second: about 6,000 rows a
	// second, so a job lives through several kills.
	batchSize     = 200
	batchesPerSec = 30
)

// checkpointEvery is the manager's --purgejob-checkpoint-interval for each
// job in turn: often, and the default (kills then mostly come before the
// first checkpoint of a slice).
var checkpointEvery = []time.Duration{time.Second, 5 * time.Second}

func TestKill9DuringPurges(t *testing.T) {
	kills := 30
	if v := os.Getenv("LETHE_CRASH_KILLS"); v != "" {
		kills, _ = strconv.Atoi(v)
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("LETHE_CRASH_SEED"); v != "" {
		seed, _ = strconv.ParseUint(v, 10, 64)
	}
	t.Logf("seed %d (LETHE_CRASH_SEED reproduces the kill times)", seed)
	rng := rand.New(rand.NewPCG(seed, 9))
	cfg, err := env.ManagerConfig()
	if err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	killed, jobs := 0, 0
	var recounted int64
	for killed < kills {
		if jobs == 12 {
			t.Fatalf("%d jobs finished with only %d kills: the purges are too fast for the kills", jobs, killed)
		}
		jobs++
		r := newRun(t, jobs)
		interval := checkpointEvery[jobs%len(checkpointEvery)]
		n := 0
		for !r.done(t) {
			// A fresh manager each time, killed after a random time
			// (mostly while it runs batches; sometimes before its first).
			m := startManager(t, cfg, interval)
			time.Sleep(time.Duration(200+rng.IntN(2300)) * time.Millisecond)
			m.Kill()
			killed++
			n++
			if n >= kills/3 {
				break
			}
		}
		// Let it finish.
		m := startManager(t, cfg, interval)
		job := r.wait(t, 3*time.Minute)
		if err := m.Stop(); err != nil {
			t.Errorf("manager: %v", err)
		}
		r.check(t, job)
		recounted += job.Status.Recounted
		t.Logf("job %d (checkpoints every %s): %d kills, %d deleted, %d of them recounted", jobs, interval, n, job.Status.Deleted, job.Status.Recounted)
	}
	t.Logf("%d kills over %d jobs in %s; %d records recounted in all", killed, jobs, time.Since(started).Round(time.Second), recounted)
	if recounted == 0 {
		t.Errorf("no kill left a batch to recount: the test did not test what it should")
	}
}

func startManager(t *testing.T, cfg *rest.Config, interval time.Duration) *managerproc.Manager {
	t.Helper()
	m, err := managerproc.Start(context.Background(), managerproc.Options{
		Config: cfg, DigestKey: digestKey,
		Args: []string{"--purgejob-checkpoint-interval=" + interval.String()},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Kill)
	return m
}

// run is one PurgeJob over a fresh table.
type run struct {
	ns   string
	conn *pgx.Conn
	key  client.ObjectKey
}

func newRun(t *testing.T, i int) *run {
	t.Helper()
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "lethe-crash-"}}
	must(t, env.Client.Create(ctx, ns))
	pg := testharness.Postgres(t)
	conn, err := pgx.Connect(ctx, pg.DSN)
	must(t, err)
	t.Cleanup(func() { conn.Close(context.Background()) })
	for _, q := range []string{
		`CREATE TABLE events (id bigint PRIMARY KEY, user_id text NOT NULL, ts timestamptz NOT NULL)`,
		`CREATE INDEX ON events (ts)`,
	} {
		_, err := conn.Exec(ctx, q)
		must(t, err)
	}
	// Timestamps in a random order of the keys: batches by key are spread.
	_, err = conn.Exec(ctx, `INSERT INTO events SELECT i, (i % 10)::text, $1::timestamptz + (CASE WHEN i <= $2 THEN -1 ELSE 1 END) * (1 + i % 1000) * interval '1 minute'
		FROM generate_series(1, $3) i`, cutoff, expired, expired+newer)
	must(t, err)
	consent := map[string]string{retentionv1.LabelSecretConsent: "true"}
	for _, obj := range []client.Object{
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "db-credentials", Labels: consent},
			StringData: map[string]string{"username": pg.User, "password": pg.Password}},
		&retentionv1.DataStore{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "db"}, Spec: retentionv1.DataStoreSpec{
			Type: retentionv1.DataStorePostgreSQL, Host: pg.Host, Port: ptr.To(int32(pg.Port)), Database: retentionv1.Identifier(pg.Database),
			TLS: retentionv1.TLSDisable, CredentialsSecretRef: &retentionv1.SecretReference{Name: "db-credentials"},
			Limits: retentionv1.DataStoreLimits{MaxBatchesPerSecond: batchesPerSec},
		}},
		&retentionv1.Dataset{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "app"}, Spec: retentionv1.DatasetSpec{
			DataStoreRef: retentionv1.LocalObjectReference{Name: "db"},
			Collections: []retentionv1.Collection{{Name: "events", TimestampField: "ts",
				Identities: []retentionv1.IdentityField{{Type: "user_id", Field: "user_id"}}}},
		}},
	} {
		must(t, env.Client.Create(ctx, obj))
	}
	job := &retentionv1.PurgeJob{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: fmt.Sprintf("purge-%d", i)},
		Spec: retentionv1.PurgeJobSpec{
			DatasetRef: retentionv1.LocalObjectReference{Name: "app"}, Mode: retentionv1.ModeEnforce,
			Cutoff: &metav1.Time{Time: cutoff}, BatchSize: batchSize,
			Operations: []retentionv1.Operation{{Collection: "events", Action: retentionv1.ActionDelete, ByAge: true}},
		},
	}
	must(t, signature.Sign(digestKey, job, nil))
	must(t, env.Client.Create(ctx, job))
	return &run{ns: ns.Name, conn: conn, key: client.ObjectKeyFromObject(job)}
}

func (r *run) get(t *testing.T) *retentionv1.PurgeJob {
	t.Helper()
	var job retentionv1.PurgeJob
	must(t, env.Client.Get(context.Background(), r.key, &job))
	return &job
}

func (r *run) done(t *testing.T) bool {
	return r.get(t).Status.Phase == retentionv1.PurgeJobSucceeded
}

// wait waits for the job to succeed; a job that stalls or fails ends the test.
func (r *run) wait(t *testing.T, timeout time.Duration) *retentionv1.PurgeJob {
	t.Helper()
	for deadline := time.Now().Add(timeout); ; time.Sleep(100 * time.Millisecond) {
		job := r.get(t)
		switch job.Status.Phase {
		case retentionv1.PurgeJobSucceeded:
			return job
		case retentionv1.PurgeJobFailed, retentionv1.PurgeJobStalled:
			t.Fatalf("job %s: phase %s, conditions %+v", r.key.Name, job.Status.Phase, job.Status.Conditions)
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s did not succeed in %s: %+v", r.key.Name, timeout, job.Status)
		}
	}
}

// check reads the table back: every expired row gone, every newer row
// there, and the job's counts equal to what was deleted, verified.
func (r *run) check(t *testing.T, job *retentionv1.PurgeJob) {
	t.Helper()
	var left, old, recent int64
	must(t, r.conn.QueryRow(context.Background(), `SELECT count(*), count(*) FILTER (WHERE ts < $1), count(*) FILTER (WHERE ts >= $1) FROM events`, cutoff).Scan(&left, &old, &recent))
	truly := int64(expired+newer) - left
	if old != 0 || recent != newer {
		t.Errorf("job %s: %d expired rows left, %d of %d newer rows left", r.key.Name, old, recent, newer)
	}
	if job.Status.Deleted != truly || job.Status.Operations[0].Deleted != truly || job.Status.Matched != expired {
		t.Errorf("job %s: status says %d deleted (operation %d, matched %d); truly deleted %d", r.key.Name, job.Status.Deleted, job.Status.Operations[0].Deleted, job.Status.Matched, truly)
	}
	c := meta.FindStatusCondition(job.Status.Conditions, retentionv1.ConditionCountsVerified)
	// Totals a recount completed are read back after the last batch; the
	// others are the batches' own (the default safety.verifyCounts).
	want := retentionv1.ReasonCountedByBatches
	if job.Status.Recounted > 0 {
		want = retentionv1.ReasonVerified
	}
	if c == nil || c.Status != metav1.ConditionTrue || c.Reason != want {
		t.Errorf("job %s: CountsVerified %+v", r.key.Name, c)
	}
	if job.Status.Recounted > 0 && !strings.Contains(meta.FindStatusCondition(job.Status.Conditions, retentionv1.ConditionReady).Message, "found by a recount") {
		t.Errorf("job %s: Ready does not tell of the recount: %+v", r.key.Name, job.Status.Conditions)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
