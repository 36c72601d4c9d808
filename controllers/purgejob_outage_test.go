package controllers_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/controllers"
	"github.com/lethe-dev/lethe/internal/testharness"
)

// cutProxy forwards TCP connections to a server until it is cut: then it
// closes every connection it forwards and every new one, until restored.
type cutProxy struct {
	port   int
	target string
	mu     sync.Mutex
	down   bool
	conns  []net.Conn
}

func startCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{port: ln.Addr().(*net.TCPAddr).Port, target: target}
	t.Cleanup(func() {
		ln.Close()
		p.cut()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.forward(c)
		}
	}()
	return p
}

func (p *cutProxy) forward(c net.Conn) {
	p.mu.Lock()
	down := p.down
	p.mu.Unlock()
	if down {
		c.Close()
		return
	}
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns = append(p.conns, c, s)
	p.mu.Unlock()
	go func() { _, _ = io.Copy(s, c); s.Close() }()
	_, _ = io.Copy(c, s)
	c.Close()
}

// cut closes every connection and refuses new ones.
func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *cutProxy) restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
}

// A PostgreSQL that goes away mid-run turns DataStoreAvailable False with
// Ready saying why; once it is back the job says it runs again,
// DataStoreAvailable is True, and the job completes.
func TestPurgeJobDataStoreOutage(t *testing.T) {
	// Progress written before every batch, so the test sees the first ones.
	startManager(t, controllers.Options{PurgeJobCheckpointInterval: time.Nanosecond})
	ns := namespace(t)
	var proxy *cutProxy
	pg := postgresStoreWith(t, ns, "db", func(s *retentionv1.DataStoreSpec) {
		proxy = startCutProxy(t, fmt.Sprintf("%s:%d", s.Host, *s.Port))
		s.Port = new(int32(proxy.port))
		s.Limits.MaxBatchesPerSecond = 5
	})
	conn := seedEvents(t, pg, 600, 300)
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hmac", Labels: marked()}, StringData: map[string]string{"key": hmacKey}})
	create(t, eventsDataset(ns))

	job := deleteJob(ns, "outage", retentionv1.ModeEnforce)
	job.Spec.BatchSize = 10
	createJob(t, job)
	key := &retentionv1.PurgeJob{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "outage"}}
	waitFor(t, key, 60*time.Second, "a few batches", func(j *retentionv1.PurgeJob) bool { return j.Status.Deleted >= 50 })

	proxy.cut()
	down := waitFor(t, key, 60*time.Second, "DataStoreAvailable False", func(j *retentionv1.PurgeJob) bool {
		c := condition(j, retentionv1.ConditionDataStoreAvailable)
		return c != nil && c.Status == metav1.ConditionFalse
	})
	outage := condition(down, retentionv1.ConditionDataStoreAvailable)
	if down.Status.Phase != retentionv1.PurgeJobRunning || outage.Reason != retentionv1.ReasonDataStoreUnavailable ||
		!hasCondition(down, retentionv1.ConditionReady, metav1.ConditionFalse, outage.Reason) {
		t.Fatalf("during the outage: phase %s, conditions %+v", down.Status.Phase, down.Status.Conditions)
	}
	// It stays False while the store is away (no write flips it back).
	time.Sleep(time.Second)
	still := waitFor(t, key, time.Second, "the job", func(*retentionv1.PurgeJob) bool { return true })
	if !hasCondition(still, retentionv1.ConditionDataStoreAvailable, metav1.ConditionFalse, outage.Reason) {
		t.Fatalf("a second into the outage: conditions %+v", still.Status.Conditions)
	}

	proxy.restore()
	back := waitFor(t, key, 60*time.Second, "DataStoreAvailable True", func(j *retentionv1.PurgeJob) bool {
		return hasCondition(j, retentionv1.ConditionDataStoreAvailable, metav1.ConditionTrue, retentionv1.ReasonConnected)
	})
	if ready := condition(back, retentionv1.ConditionReady); ready == nil || ready.Reason == outage.Reason || strings.Contains(ready.Message, "retrying") {
		t.Errorf("after recovery Ready still tells of the outage: %+v", ready)
	}
	done := waitPhase(t, ns, "outage", retentionv1.PurgeJobSucceeded)
	if got := count(t, conn, `SELECT count(*) FROM events WHERE ts < $1`, base); got != 0 {
		t.Errorf("%d expired rows left", got)
	}
	if got := count(t, conn, `SELECT count(*) FROM events`); got != 300 {
		t.Errorf("%d rows left, want 300", got)
	}
	if !hasCondition(done, retentionv1.ConditionDataStoreAvailable, metav1.ConditionTrue, retentionv1.ReasonConnected) {
		t.Errorf("finished: conditions %+v", done.Status.Conditions)
	}
	// A batch that failed during the outage may have committed: the totals
	// are still exact; read back when a recount attributed records to it.
	reason := retentionv1.ReasonCountedByBatches
	if done.Status.Recounted > 0 {
		reason = retentionv1.ReasonVerified
	}
	if done.Status.Deleted != 300 || !hasCondition(done, retentionv1.ConditionCountsVerified, metav1.ConditionTrue, reason) {
		t.Errorf("finished: %d deleted (want 300), conditions %+v", done.Status.Deleted, done.Status.Conditions)
	}
}

// A PostgreSQL that is stopped mid-run (fast shutdown: sessions terminated,
// connections refused) turns DataStoreAvailable False, and the DataStore's
// Ready False; once it is started again both turn True, Ready no longer
// tells of the outage, and the job completes exactly.
func TestPurgeJobStoppedPostgreSQL(t *testing.T) {
	startManager(t, controllers.Options{})
	ns := namespace(t)
	pg, srv := testharness.PostgresOwn(t)
	storeOn(t, ns, "db", pg, func(s *retentionv1.DataStoreSpec) {
		s.Limits.MaxBatchesPerSecond = 5
		s.ProbeInterval = "2s"
	})
	conn := seedEvents(t, pg, 600, 300)
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hmac", Labels: marked()}, StringData: map[string]string{"key": hmacKey}})
	create(t, eventsDataset(ns))
	job := deleteJob(ns, "stopped", retentionv1.ModeEnforce)
	job.Spec.BatchSize = 10
	createJob(t, job)
	key := &retentionv1.PurgeJob{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "stopped"}}
	waitFor(t, key, 60*time.Second, "a few batches", func(j *retentionv1.PurgeJob) bool { return j.Status.Deleted >= 50 })

	conn.Close(context.Background())
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	down := waitFor(t, key, 60*time.Second, "DataStoreAvailable False", func(j *retentionv1.PurgeJob) bool {
		c := condition(j, retentionv1.ConditionDataStoreAvailable)
		return c != nil && c.Status == metav1.ConditionFalse
	})
	t.Logf("stopped: %+v", condition(down, retentionv1.ConditionDataStoreAvailable))
	if down.Status.Phase != retentionv1.PurgeJobRunning || !hasCondition(down, retentionv1.ConditionReady, metav1.ConditionFalse, "") {
		t.Fatalf("during the outage: phase %s, conditions %+v", down.Status.Phase, down.Status.Conditions)
	}
	store := &retentionv1.DataStore{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db"}}
	waitFor(t, store, 30*time.Second, "the DataStore not Ready", func(d *retentionv1.DataStore) bool {
		return hasCondition(d, retentionv1.ConditionReady, metav1.ConditionFalse, "")
	})

	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	back := waitFor(t, key, 60*time.Second, "DataStoreAvailable True", func(j *retentionv1.PurgeJob) bool {
		return hasCondition(j, retentionv1.ConditionDataStoreAvailable, metav1.ConditionTrue, retentionv1.ReasonConnected)
	})
	if ready := condition(back, retentionv1.ConditionReady); ready == nil || strings.Contains(ready.Message, "retrying") || strings.Contains(ready.Message, "unavailable") {
		t.Errorf("after recovery Ready still tells of the outage: %+v", ready)
	}
	waitFor(t, store, 30*time.Second, "the DataStore Ready again", func(d *retentionv1.DataStore) bool {
		return hasCondition(d, retentionv1.ConditionReady, metav1.ConditionTrue, retentionv1.ReasonConnected)
	})
	done := waitPhase(t, ns, "stopped", retentionv1.PurgeJobSucceeded)
	conn2, err := pgx.Connect(context.Background(), pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close(context.Background())
	if got := count(t, conn2, `SELECT count(*) FROM events`); got != 300 || done.Status.Deleted != 300 {
		t.Errorf("%d rows left (want 300), %d deleted (want 300)", got, done.Status.Deleted)
	}
}
