package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/lethe-dev/lethe/internal/datastore"
)

var _ datastore.HealthReader = (*Driver)(nil)

// grantReplicaStatus is what reading a replica's status needs.
const grantReplicaStatus = "grant its user REPLICATION CLIENT (MySQL; or REPLICA MONITOR on MySQL 8.0.22+) or SLAVE MONITOR (MariaDB 10.5+)"

// Health reads Threads_running (SHOW GLOBAL STATUS, as pt-archiver's
// --max-load) on the server, and each replica's lag on the replica itself
// (SHOW REPLICA STATUS, or SHOW SLAVE STATUS on older servers:
// Seconds_Behind_Master or Seconds_Behind_Source, as pt-archiver's
// --check-slave-lag). A replica whose lag is NULL does not replicate
// (Stopped); one that cannot be reached or refuses the statement has a
// Problem.
func (d *Driver) Health(ctx context.Context, q datastore.HealthQuery) (datastore.Health, error) {
	const op = "health"
	h := datastore.Health{ActiveSessions: -1, LockWaiters: -1, ThreadsRunning: -1}
	if q.ThreadsRunning {
		var name string
		if err := d.db.QueryRowContext(ctx, "SHOW GLOBAL STATUS LIKE 'Threads_running'").Scan(&name, &h.ThreadsRunning); err != nil {
			return h, classify(op, err)
		}
	}
	for _, rc := range q.Replicas {
		h.Replicas = append(h.Replicas, d.replicaHealth(ctx, rc))
	}
	return h, nil
}

// replicaHealth reads one replica's lag.
func (d *Driver) replicaHealth(ctx context.Context, rc datastore.Config) datastore.ReplicaHealth {
	port := rc.Port
	if port == 0 {
		port = defaultPort
	}
	r := datastore.ReplicaHealth{Name: net.JoinHostPort(rc.Host, strconv.Itoa(port))}
	db, err := d.replicas.get(d.cfg, rc)
	if err != nil {
		r.Problem = fmt.Sprintf("replica %s: %s", r.Name, datastore.ConnectionProblem(err))
		return r
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	lag, found, err := replicaLag(ctx, db)
	switch {
	case err != nil:
		var me *gomysql.MySQLError
		if errors.As(err, &me) && (me.Number == erSpecificAccessDenied || me.Number == erAccessDenied || me.Number == erDBAccessDenied) {
			r.Problem = fmt.Sprintf("replica %s refuses to show its replication status: %s", r.Name, grantReplicaStatus)
		} else {
			r.Problem = fmt.Sprintf("replica %s: %s", r.Name, datastore.ConnectionProblem(classify("health", err)))
			d.replicas.forget(rc) // reconnect next time
		}
	case !found:
		r.Problem = fmt.Sprintf("%s is not a replica (SHOW REPLICA STATUS is empty)", r.Name)
	case lag == nil:
		r.Stopped = true
	default:
		r.Lag, r.LagKnown = time.Duration(*lag)*time.Second, true
	}
	return r
}

// replicaLag runs SHOW REPLICA STATUS (SHOW SLAVE STATUS where that is
// unknown) and returns its lag column; found is false when the server is
// not a replica. With several sources (MariaDB multi-source), the first.
func replicaLag(ctx context.Context, db *sql.DB) (lag *int64, found bool, err error) {
	rows, err := db.QueryContext(ctx, "SHOW REPLICA STATUS")
	var me *gomysql.MySQLError
	if err != nil && errors.As(err, &me) && me.Number == erParse {
		rows, err = db.QueryContext(ctx, "SHOW SLAVE STATUS")
	}
	if err != nil {
		return nil, false, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, false, err
	}
	if !rows.Next() {
		return nil, false, rows.Err()
	}
	vals := make([]sql.RawBytes, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return nil, false, err
	}
	for i, c := range cols {
		if c != "Seconds_Behind_Master" && c != "Seconds_Behind_Source" {
			continue
		}
		if vals[i] == nil {
			return nil, true, nil
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(vals[i])), 10, 64)
		if err != nil {
			return nil, true, fmt.Errorf("replica lag %q is not a number", vals[i])
		}
		return &n, true, nil
	}
	return nil, true, errors.New("the replica status has no Seconds_Behind_Master column")
}

// replicaPool keeps one small connection pool per replica (address and
// user), closed with the driver.
type replicaPool struct {
	mu  sync.Mutex
	dbs map[string]*sql.DB
}

func replicaKey(rc datastore.Config) string {
	return fmt.Sprintf("%s|%d|%s|%s", rc.Host, rc.Port, rc.Username, rc.Password)
}

// get returns the pool of a replica: base's settings (TLS, CA, network
// policy) with the replica's address and credentials, no database.
func (p *replicaPool) get(base, rc datastore.Config) (*sql.DB, error) {
	key := replicaKey(rc)
	p.mu.Lock()
	defer p.mu.Unlock()
	if db, ok := p.dbs[key]; ok {
		return db, nil
	}
	cfg := base
	cfg.Host, cfg.Port, cfg.Username, cfg.Password = rc.Host, rc.Port, rc.Username, rc.Password
	cfg.Database = ""
	c, err := baseConfig(cfg)
	if err != nil {
		return nil, err
	}
	c.Timeout = 5 * time.Second
	db, err := openDB(c, 1)
	if err != nil {
		return nil, err
	}
	if p.dbs == nil {
		p.dbs = map[string]*sql.DB{}
	}
	p.dbs[key] = db
	return db, nil
}

func (p *replicaPool) forget(rc datastore.Config) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if db, ok := p.dbs[replicaKey(rc)]; ok {
		_ = db.Close()
		delete(p.dbs, replicaKey(rc))
	}
}

func (p *replicaPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, db := range p.dbs {
		_ = db.Close()
		delete(p.dbs, k)
	}
}
