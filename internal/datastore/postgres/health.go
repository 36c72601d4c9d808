package postgres

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/lethe-dev/lethe/internal/datastore"
)

var _ datastore.HealthReader = (*Driver)(nil)

// grantMonitor is what a missing privilege asks for: pg_monitor includes
// pg_read_all_stats, which shows other users' rows of pg_stat_replication
// and pg_stat_activity.
const grantMonitor = "GRANT pg_monitor TO the DataStore's user"

// Health reads the primary's standbys from pg_stat_replication (replay_lag,
// and the WAL not yet replayed: pg_wal_lsn_diff(pg_current_wal_lsn(),
// replay_lsn)) and counts active sessions and lock waiters in
// pg_stat_activity, not counting Lethe's own (application_name lethe).
// Columns a user without pg_monitor cannot see read as NULL: a Problem.
func (d *Driver) Health(ctx context.Context, q datastore.HealthQuery) (datastore.Health, error) {
	const op = "health"
	h := datastore.Health{ActiveSessions: -1, LockWaiters: -1, ThreadsRunning: -1}
	if q.Replication {
		ignored := q.IgnoredStandbys
		if ignored == nil {
			ignored = []string{}
		}
		rows, err := d.pool.Query(ctx, `SELECT coalesce(application_name, ''), coalesce(host(client_addr), ''), state,
				extract(epoch FROM replay_lag)::float8,
				pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::float8
			FROM pg_stat_replication
			WHERE coalesce(state, '') NOT IN ('backup', 'stopping') AND NOT (coalesce(application_name, '') = ANY($1))
			ORDER BY pid`, ignored)
		if err != nil {
			return h, classify(op, err)
		}
		for rows.Next() {
			var name, addr string
			var state *string
			var lag, bytes *float64
			if err := rows.Scan(&name, &addr, &state, &lag, &bytes); err != nil {
				rows.Close()
				return h, classify(op, err)
			}
			r := datastore.ReplicaHealth{Name: standbyName(name, addr)}
			switch {
			case state == nil:
				// Hidden from a user without pg_read_all_stats.
				r.Problem = fmt.Sprintf("pg_stat_replication hides the state of standby %s from the DataStore's user: %s", r.Name, grantMonitor)
			case bytes == nil:
				r.Problem = fmt.Sprintf("standby %s has not reported its replay position yet", r.Name)
			default:
				r.LagBytes, r.BytesKnown = int64(math.Max(*bytes, 0)), true
				if lag != nil {
					r.Lag, r.LagKnown = time.Duration(*lag*float64(time.Second)), true
				}
			}
			h.Replicas = append(h.Replicas, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return h, classify(op, err)
		}
	}
	if q.Sessions {
		var hidden int64
		err := d.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE state = 'active'),
				count(*) FILTER (WHERE wait_event_type = 'Lock'),
				count(*) FILTER (WHERE state IS NULL)
			FROM pg_stat_activity
			WHERE coalesce(backend_type, 'client backend') = 'client backend' AND pid <> pg_backend_pid()
				AND application_name IS DISTINCT FROM 'lethe'`).Scan(&h.ActiveSessions, &h.LockWaiters, &hidden)
		if err != nil {
			return h, classify(op, err)
		}
		if hidden > 0 {
			h.ActiveSessions, h.LockWaiters = -1, -1
			h.Problems = append(h.Problems, fmt.Sprintf("pg_stat_activity hides the state of %d sessions of other users from the DataStore's user: %s", hidden, grantMonitor))
		}
	}
	return h, nil
}

// standbyName names a standby by its application_name and address.
func standbyName(app, addr string) string {
	switch {
	case app == "" && addr == "":
		return "(unnamed)"
	case addr == "":
		return fmt.Sprintf("%q", app)
	case app == "":
		return addr
	}
	return fmt.Sprintf("%q (%s)", app, addr)
}
