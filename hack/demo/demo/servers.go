package demo

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

// The demo starts its own throwaway servers rather than going through
// internal/testharness, whose API is tied to testing.TB and whose servers
// live until the test process ends. The way they are started is the same:
// free loopback ports, a private directory, PostgreSQL as an unprivileged
// user when running as root, a process group of their own (so a terminal's
// Ctrl-C reaches the demo, which then stops them in order) and SIGKILL as the
// parent-death signal (so a killed demo takes them along).

const (
	readyTimeout = 30 * time.Second
	stopTimeout  = 5 * time.Second
)

// servers are the datastore processes of one demo run.
type servers struct {
	dir string // the run's private directory; server dirs go below it

	mu    sync.Mutex
	procs []*server
}

type server struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	stopSig syscall.Signal
	done    chan struct{}
	waitErr error
}

// spec describes how to run a server.
type spec struct {
	name    string
	path    string
	args    []string
	dir     string
	logPath string
	env     []string
	cred    *syscall.Credential
	stopSig syscall.Signal // graceful stop; SIGKILL follows after stopTimeout
}

func (s *servers) start(sp spec) (*server, error) {
	logf, err := os.OpenFile(sp.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(sp.path, sp.args...)
	cmd.Dir = sp.dir
	cmd.Env = sp.env
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: sp.cred}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", sp.path, err)
	}
	p := &server{name: sp.name, cmd: cmd, logPath: sp.logPath, stopSig: sp.stopSig, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	s.mu.Lock()
	s.procs = append(s.procs, p)
	s.mu.Unlock()
	return p, nil
}

// stop stops every server, newest first, each gracefully and then by force.
func (s *servers) stop() {
	s.mu.Lock()
	ps := s.procs
	s.procs = nil
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Add(1)
		go func() { defer wg.Done(); p.stop() }()
	}
	wg.Wait()
}

func (p *server) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *server) stop() {
	pgid := p.cmd.Process.Pid
	if !p.exited() {
		sig := p.stopSig
		if sig == 0 {
			sig = syscall.SIGKILL
		}
		_ = syscall.Kill(-pgid, sig)
		select {
		case <-p.done:
		case <-time.After(stopTimeout):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-p.done
		}
	}
	// Children that outlived the leader (backends of a stopped postmaster).
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

// waitReady polls probe until it succeeds, the process exits or
// readyTimeout passes; the error carries the tail of the server's log.
func (p *server) waitReady(ctx context.Context, probe func(ctx context.Context) error) error {
	deadline := time.Now().Add(readyTimeout)
	for {
		if p.exited() {
			return fmt.Errorf("%s exited during startup (%w); last lines of %s:\n%s", p.name, p.waitErr, p.logPath, logTail(p.logPath, 20))
		}
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := probe(pctx)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %v: %w; last lines of %s:\n%s", p.name, readyTimeout, err, p.logPath, logTail(p.logPath, 20))
		}
		select {
		case <-p.done:
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (s *servers) serverDir(name string) (string, error) {
	return os.MkdirTemp(s.dir, name+"-")
}

// pgInstance is a running PostgreSQL server with one database for the app.
type pgInstance struct {
	Host, User, Password, Database, Version string
	Port                                    int
}

// URL is a postgres:// URL for pgx.
func (p pgInstance) URL(database string) string {
	u := url.URL{
		Scheme: "postgres", User: url.UserPassword(p.User, p.Password),
		Host: net.JoinHostPort(p.Host, strconv.Itoa(p.Port)), Path: "/" + database, RawQuery: "sslmode=disable",
	}
	return u.String()
}

// startPostgres runs initdb and postgres (as the postgres system user when
// the demo runs as root: PostgreSQL refuses root), then creates database.
func (s *servers) startPostgres(ctx context.Context, database string) (pgInstance, error) {
	initdb, postgres := findPostgres()
	if initdb == "" {
		return pgInstance{}, errors.New("initdb/postgres not found in PATH or /usr/lib/postgresql/*/bin; install them with: apt-get install -y postgresql")
	}
	dir, err := s.serverDir("postgres")
	if err != nil {
		return pgInstance{}, err
	}
	cred, err := unprivilegedCredential()
	if err != nil {
		return pgInstance{}, err
	}
	chown := func(path string) error {
		if cred == nil {
			return nil
		}
		return os.Chown(path, int(cred.Uid), int(cred.Gid))
	}
	if err := chown(dir); err != nil {
		return pgInstance{}, err
	}
	password := randomHex(12)
	pwfile := filepath.Join(dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(password+"\n"), 0o600); err != nil {
		return pgInstance{}, err
	}
	if err := chown(pwfile); err != nil {
		return pgInstance{}, err
	}
	env := cleanEnv("PG")
	logPath := filepath.Join(dir, "postgres.log")
	data := filepath.Join(dir, "data")
	cmd := exec.CommandContext(ctx, initdb, "-D", data, "-U", "lethe", "--pwfile", pwfile,
		"--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--locale=C", "--no-sync")
	cmd.Dir, cmd.Env = dir, env
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
	if err := runLogged(cmd, logPath); err != nil {
		return pgInstance{}, fmt.Errorf("initdb: %w", err)
	}
	_ = os.Remove(pwfile)

	return retryPorts(func(port int) (pgInstance, error) {
		p, err := s.start(spec{
			name: "PostgreSQL", path: postgres, dir: dir, logPath: logPath, env: env, cred: cred,
			stopSig: syscall.SIGQUIT, // immediate shutdown: the data is thrown away
			args: []string{
				"-D", data, "-p", strconv.Itoa(port),
				"-c", "listen_addresses=127.0.0.1",
				"-c", "unix_socket_directories=",
				"-c", "fsync=off",
				"-c", "synchronous_commit=off",
				"-c", "full_page_writes=off",
				"-c", "wal_level=minimal",
				"-c", "max_wal_senders=0",
				"-c", "max_wal_size=2GB",
				"-c", "checkpoint_timeout=30min",
				"-c", "shared_buffers=256MB",
				"-c", "maintenance_work_mem=256MB",
				"-c", "dynamic_shared_memory_type=mmap",
				"-c", "huge_pages=off",
				"-c", "log_min_messages=warning",
				"-c", "log_line_prefix=%m [%p] ",
			},
		})
		if err != nil {
			return pgInstance{}, err
		}
		inst := pgInstance{Host: "127.0.0.1", Port: port, User: "lethe", Password: password, Database: database}
		var admin *pgx.Conn
		if err := p.waitReady(ctx, func(ctx context.Context) error {
			c, err := pgx.Connect(ctx, inst.URL("postgres"))
			if err == nil {
				admin = c
			}
			return err
		}); err != nil {
			return pgInstance{}, err
		}
		defer admin.Close(context.Background())
		if err := admin.QueryRow(ctx, "SHOW server_version").Scan(&inst.Version); err != nil {
			return pgInstance{}, err
		}
		if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{database}.Sanitize()); err != nil {
			return pgInstance{}, fmt.Errorf("creating database %s: %w", database, err)
		}
		return inst, nil
	})
}

// findPostgres returns initdb and postgres: from PATH, else from the highest
// /usr/lib/postgresql/<version>/bin.
func findPostgres() (initdb, postgres string) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			if q := filepath.Join(filepath.Dir(real), "postgres"); isExecutable(q) {
				return p, q
			}
		}
		if q, err := exec.LookPath("postgres"); err == nil {
			return p, q
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	version := func(d string) float64 {
		v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(d)), 64)
		return v
	}
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if i, p := filepath.Join(d, "initdb"), filepath.Join(d, "postgres"); isExecutable(i) && isExecutable(p) {
			return i, p
		}
	}
	return "", ""
}

// unprivilegedCredential is nil unless the demo runs as root, else the
// postgres system user (or nobody).
func unprivilegedCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 == nil && err2 == nil {
			return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
		}
	}
	return nil, errors.New("running as root and neither the postgres nor the nobody user exists; PostgreSQL refuses to run as root (apt-get install -y postgresql creates the postgres user)")
}

// redisInstance is a running redis-server.
type redisInstance struct {
	Host, Version string
	Port          int
}

func (r redisInstance) Addr() string { return net.JoinHostPort(r.Host, strconv.Itoa(r.Port)) }

// startRedis runs redis-server without persistence.
func (s *servers) startRedis(ctx context.Context) (redisInstance, error) {
	bin := lookBinary("redis-server", "/usr/bin/redis-server", "/usr/sbin/redis-server")
	if bin == "" {
		return redisInstance{}, errors.New("redis-server not found; install it with: apt-get install -y redis-server")
	}
	dir, err := s.serverDir("redis")
	if err != nil {
		return redisInstance{}, err
	}
	logPath := filepath.Join(dir, "redis.log")
	return retryPorts(func(port int) (redisInstance, error) {
		p, err := s.start(spec{
			name: "Redis", path: bin, dir: dir, logPath: logPath, stopSig: syscall.SIGKILL,
			args: []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
				"--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"},
		})
		if err != nil {
			return redisInstance{}, err
		}
		inst := redisInstance{Host: "127.0.0.1", Port: port}
		err = p.waitReady(ctx, func(ctx context.Context) error {
			c := redis.NewClient(&redis.Options{Addr: inst.Addr(), MaxRetries: -1})
			defer c.Close()
			info, err := c.Info(ctx, "server").Result()
			for _, line := range strings.Split(info, "\n") {
				if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
					inst.Version = v
				}
			}
			return err
		})
		return inst, err
	})
}

// retryPorts runs start on fresh free ports while it fails because the port
// was taken in between.
func retryPorts[T any](start func(port int) (T, error)) (T, error) {
	var zero T
	var err error
	for range 3 {
		var port int
		if port, err = freePort(); err != nil {
			return zero, err
		}
		var v T
		if v, err = start(port); err == nil {
			return v, nil
		}
		if !strings.Contains(strings.ToLower(err.Error()), "address already in use") {
			return zero, err
		}
	}
	return zero, err
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// cmdContext is a short-lived command that dies with the demo.
func cmdContext(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

func runLogged(cmd *exec.Cmd, logPath string) error {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	fmt.Fprintf(f, "+ %s\n", strings.Join(cmd.Args, " "))
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w; last lines of %s:\n%s", filepath.Base(cmd.Path), err, logPath, logTail(logPath, 20))
	}
	return nil
}

func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

func lookBinary(name string, paths ...string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, p := range paths {
		if isExecutable(p) {
			return p
		}
	}
	return ""
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// cleanEnv is the environment without variables that would make a server
// read a developer's configuration.
func cleanEnv(dropPrefixes ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		drop := false
		for _, p := range dropPrefixes {
			drop = drop || strings.HasPrefix(kv, p)
		}
		if !drop {
			env = append(env, kv)
		}
	}
	return append(env, "LC_ALL=C", "LANG=C")
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
