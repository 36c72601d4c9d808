package mysql

import (
	"context"
	"database/sql"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/testharness"
)

// Threads_running counts the statements running on the server.
func TestHealthThreadsRunning(t *testing.T) {
	e := newEnv(t)
	d := e.driver()
	ctx := context.Background()
	q := datastore.HealthQuery{ThreadsRunning: true}
	idle, err := d.Health(ctx, q)
	if err != nil || idle.ThreadsRunning < 1 || idle.ActiveSessions != -1 {
		t.Fatalf("idle: %+v, %v", idle, err)
	}
	const sleepers = 6
	db, err := sql.Open("mysql", e.my.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var wg sync.WaitGroup
	for range sleepers {
		wg.Add(1)
		go func() { defer wg.Done(); _, _ = db.Exec(`SELECT SLEEP(3)`) }()
	}
	defer wg.Wait()
	deadline := time.Now().Add(3 * time.Second)
	for {
		h, err := d.Health(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if h.ThreadsRunning >= idle.ThreadsRunning+sleepers {
			t.Logf("idle %d, with %d sleepers %d", idle.ThreadsRunning, sleepers, h.ThreadsRunning)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Threads_running %d with %d sleepers (idle %d)", h.ThreadsRunning, sleepers, idle.ThreadsRunning)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A replica's lag is read on the replica: a number while it replicates,
// Stopped when its SQL thread is stopped, a Problem saying what to grant
// when its user may not see the status, and a Problem when it cannot be
// reached or is not a replica.
func TestHealthReplica(t *testing.T) {
	my, replica := testharness.MariaDBWithReplica(t)
	ctx := context.Background()
	e := &env{t: t, my: my}
	d := e.driver()
	rc := datastore.Config{Host: replica.Host, Port: replica.Port, Username: replica.User, Password: replica.Password}
	read := func(rc datastore.Config) datastore.ReplicaHealth {
		t.Helper()
		h, err := d.Health(ctx, datastore.HealthQuery{Replicas: []datastore.Config{rc}})
		if err != nil || len(h.Replicas) != 1 {
			t.Fatalf("Health: %+v, %v", h, err)
		}
		return h.Replicas[0]
	}
	// The replica's threads start just after the server: wait until it
	// replicates before reading what it reports.
	r := read(rc)
	for deadline := time.Now().Add(20 * time.Second); (r.Stopped || !r.LagKnown) && time.Now().Before(deadline); r = read(rc) {
		time.Sleep(100 * time.Millisecond)
	}
	if r.Problem != "" || r.Stopped || !r.LagKnown || r.Lag != 0 || r.Name != net.JoinHostPort(replica.Host, strconv.Itoa(replica.Port)) {
		t.Fatalf("replicating: %+v", r)
	}
	if err := replica.Exec(ctx, "STOP SLAVE SQL_THREAD"); err != nil {
		t.Fatal(err)
	}
	if r := read(rc); !r.Stopped || r.Problem != "" {
		t.Fatalf("SQL thread stopped: %+v", r)
	}
	if err := replica.Exec(ctx, "START SLAVE SQL_THREAD"); err != nil {
		t.Fatal(err)
	}

	// An account without REPLICATION CLIENT / SLAVE MONITOR.
	if err := replica.Exec(ctx, "CREATE USER 'plain'@'%' IDENTIFIED BY 'plain-pw'"); err != nil {
		t.Fatal(err)
	}
	plain := rc
	plain.Username, plain.Password = "plain", "plain-pw"
	if r := read(plain); !strings.Contains(r.Problem, "SLAVE MONITOR") || r.LagKnown {
		t.Fatalf("without the privilege: %+v", r)
	}
	// The primary is not a replica.
	self := datastore.Config{Host: my.Host, Port: my.Port, Username: my.User, Password: my.Password}
	if r := read(self); !strings.Contains(r.Problem, "is not a replica") {
		t.Fatalf("the primary: %+v", r)
	}
	// Nothing listens.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	if r := read(datastore.Config{Host: "127.0.0.1", Port: port, Username: "x", Password: "y"}); r.Problem == "" || r.LagKnown {
		t.Fatalf("unreachable: %+v", r)
	} else {
		t.Logf("unreachable: %s", r.Problem)
	}
}
