package servers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// StandbyOptions configure a PostgreSQL streaming standby.
type StandbyOptions struct {
	// Name is the standby's application_name in the primary's
	// pg_stat_replication (default "standby").
	Name string
	// ApplyDelay, when positive, delays replay by this much
	// (recovery_min_apply_delay).
	ApplyDelay time.Duration
	// StatusInterval is wal_receiver_status_interval: how often the standby
	// reports its replay position to the primary when no new WAL arrives
	// (it reports at once after each write of WAL it receives). Default 1s,
	// so tests see a caught-up standby soon; PostgreSQL's own default is
	// 10s.
	StatusInterval time.Duration
}

// StartPostgresStandby starts a streaming standby of primary (a server
// started with PostgresOptions.Replication) on 127.0.0.1: pg_basebackup of
// the primary, then a second postgres with standby.signal and
// primary_conninfo. The returned Postgres connects to the standby (read
// only, hot_standby) as the primary's superuser.
func (g *Group) StartPostgresStandby(ctx context.Context, primary *Postgres, o StandbyOptions) (*Postgres, error) {
	if !primary.replication {
		return nil, errors.New("PostgreSQL standby: the primary was not started with PostgresOptions.Replication")
	}
	_, postgres := findPostgres()
	basebackup := filepath.Join(filepath.Dir(postgres), "pg_basebackup")
	if postgres == "" || !isExecutable(basebackup) {
		return nil, &MissingError{What: "pg_basebackup/postgres", Where: "next to postgres", Install: "apt-get install -y postgresql"}
	}
	if o.Name == "" {
		o.Name = "standby"
	}
	if o.StatusInterval <= 0 {
		o.StatusInterval = time.Second
	}
	dir, cred, err := g.postgresDir("postgres-standby")
	if err != nil {
		return nil, err
	}
	env := append(cleanEnv("PG"), "PGPASSWORD="+primary.Password)
	logPath := filepath.Join(dir, "postgres.log")
	data := filepath.Join(dir, "data")
	cmd := exec.CommandContext(ctx, basebackup, "-h", primary.Host, "-p", strconv.Itoa(primary.Port), "-U", primary.User,
		"-D", data, "-X", "stream", "-c", "fast", "--no-sync", "-R")
	cmd.Dir = dir
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if err := runLogged("pg_basebackup", cmd, logPath); err != nil {
		return nil, err
	}
	conninfo := fmt.Sprintf("host=%s port=%d user=%s password=%s application_name=%s sslmode=disable",
		primary.Host, primary.Port, primary.User, primary.Password, o.Name)
	settings := []string{
		"listen_addresses=127.0.0.1",
		"unix_socket_directories=",
		"fsync=off",
		"hot_standby=on",
		"hot_standby_feedback=off",
		fmt.Sprintf("wal_receiver_status_interval=%dms", o.StatusInterval.Milliseconds()),
		"max_connections=200",
		"shared_buffers=128MB",
		"dynamic_shared_memory_type=mmap",
		"huge_pages=off",
		"log_min_messages=warning",
		"log_line_prefix=%m [%p] ",
		"primary_conninfo=" + conninfo,
		"ssl=off",
	}
	if o.ApplyDelay > 0 {
		settings = append(settings, fmt.Sprintf("recovery_min_apply_delay=%dms", o.ApplyDelay.Milliseconds()))
	}
	return startWithRetry(func(port int) (*Postgres, error) {
		args := []string{"-D", data, "-p", strconv.Itoa(port)}
		for _, s := range settings {
			args = append(args, "-c", s)
		}
		p, err := g.start(procSpec{
			name: "PostgreSQL standby", path: postgres, dir: dir, logPath: logPath, env: cleanEnv("PG"), cred: cred, args: args,
			stopSig: syscall.SIGQUIT,
		})
		if err != nil {
			return nil, err
		}
		u := &url.URL{
			Scheme:   "postgres",
			User:     url.UserPassword(primary.User, primary.Password),
			Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
			Path:     "/postgres",
			RawQuery: "sslmode=disable",
		}
		var admin *pgx.Conn
		if err := g.waitReady(ctx, p, func(ctx context.Context) error {
			c, err := pgx.Connect(ctx, u.String())
			if err != nil {
				return err
			}
			admin = c
			return nil
		}); err != nil {
			return nil, err
		}
		srv := &Postgres{Host: "127.0.0.1", Port: port, User: primary.User, Password: primary.Password, admin: admin, adminURL: u}
		if err := srv.setUp(ctx, ""); err != nil {
			_ = admin.Close(context.Background())
			g.unregisterAndStop(p)
			return nil, err
		}
		return srv, nil
	})
}

// Exec runs one statement on the server's admin connection (on a standby:
// pg_wal_replay_pause(), pg_wal_replay_resume()).
func (p *Postgres) Exec(ctx context.Context, sql string) error { return p.exec(ctx, sql) }
