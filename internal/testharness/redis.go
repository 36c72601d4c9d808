package testharness

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisServer is a logical Redis database for one test, empty when handed
// out and reserved for that test until it ends.
type RedisServer struct {
	Addr     string // host:port
	Host     string
	Port     int
	Password string // empty on the throwaway server
	DB       int    // logical database (SELECT index)
}

// redisDatabases is the number of logical databases of the throwaway
// server, and so the number of tests that can hold one at the same time.
const redisDatabases = 1024

// rdServer is the Redis server of this test process.
type rdServer struct {
	addr, host, password string
	port                 int

	mu   sync.Mutex
	free []int // logical databases not held by a running test, ascending
}

var rdLazy lazy[*rdServer]

// Redis returns a logical database of its own, flushed, on a throwaway
// redis-server (or on the server of LETHE_TEST_REDIS_ADDR). The server starts
// on first use; the database returns to the pool when the test ends.
func Redis(tb testing.TB) RedisServer {
	tb.Helper()
	requireMain(tb)
	srv := rdLazy.get(tb, "Redis", startRedis)

	srv.mu.Lock()
	if len(srv.free) == 0 {
		srv.mu.Unlock()
		tb.Fatalf("testharness: Redis: every logical database of %s is held by a running test", srv.addr)
	}
	db := srv.free[0]
	srv.free = srv.free[1:]
	srv.mu.Unlock()
	tb.Cleanup(func() {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		i := 0
		for i < len(srv.free) && srv.free[i] < db {
			i++
		}
		srv.free = append(srv.free[:i], append([]int{db}, srv.free[i:]...)...)
	})

	c := redis.NewClient(&redis.Options{Addr: srv.addr, Password: srv.password, DB: db})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.FlushDB(ctx).Err(); err != nil {
		tb.Fatalf("testharness: Redis: FLUSHDB %d: %v", db, err)
	}
	return RedisServer{Addr: srv.addr, Host: srv.host, Port: srv.port, Password: srv.password, DB: db}
}

func startRedis() (*rdServer, error) {
	if addr := os.Getenv("LETHE_TEST_REDIS_ADDR"); addr != "" {
		return externalRedis(addr)
	}
	bin := lookBinary([]string{"redis-server"}, "/usr/bin/redis-server", "/usr/sbin/redis-server")
	if bin == "" {
		return nil, fmt.Errorf("redis-server not found in PATH or /usr/bin; " +
			"install it with: apt-get install -y redis-server (or set LETHE_TEST_REDIS_ADDR)")
	}
	dir, err := serverDir("redis")
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "redis.log")
	return startWithRetry(func(port int) (*rdServer, error) {
		p, err := startProcess(procSpec{
			name: "Redis", path: bin, dir: dir, logPath: logPath, stopSig: syscall.SIGKILL,
			args: []string{
				"--port", strconv.Itoa(port),
				"--bind", "127.0.0.1",
				"--dir", dir,
				"--save", "",
				"--appendonly", "no",
				"--databases", strconv.Itoa(redisDatabases),
				"--daemonize", "no",
				"--loglevel", "warning",
			},
		})
		if err != nil {
			return nil, err
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		err = p.waitReady(func(ctx context.Context) error {
			c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
			defer c.Close()
			return c.Ping(ctx).Err()
		})
		if err != nil {
			return nil, err
		}
		srv := &rdServer{addr: addr, host: "127.0.0.1", port: port}
		for i := range redisDatabases {
			srv.free = append(srv.free, i)
		}
		return srv, nil
	})
}

// externalRedis uses a developer's server: host:port or a redis:// URL.
// Logical database 0 is left alone.
func externalRedis(addr string) (*rdServer, error) {
	opts := &redis.Options{Addr: addr}
	if strings.Contains(addr, "://") {
		var err error
		if opts, err = redis.ParseURL(addr); err != nil {
			return nil, fmt.Errorf("LETHE_TEST_REDIS_ADDR: %w", err)
		}
		opts.DB = 0
	}
	c := redis.NewClient(opts)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		return nil, fmt.Errorf("connecting to LETHE_TEST_REDIS_ADDR: %w", err)
	}
	n := 16
	if v, err := c.ConfigGet(ctx, "databases").Result(); err == nil {
		if d, err := strconv.Atoi(v["databases"]); err == nil && d > 1 {
			n = d
		}
	}
	host, portStr, _ := net.SplitHostPort(opts.Addr)
	port, _ := strconv.Atoi(portStr)
	srv := &rdServer{addr: opts.Addr, host: host, port: port, password: opts.Password}
	for i := 1; i < n; i++ {
		srv.free = append(srv.free, i)
	}
	return srv, nil
}

// RedisTLSServer is a throwaway redis-server that accepts only TLS, with a
// certificate (for 127.0.0.1 and localhost) from a throwaway authority.
type RedisTLSServer struct {
	Host   string
	Port   int
	CACert []byte // PEM certificate of the authority that signed the server's
}

var rdTLSLazy lazy[*RedisTLSServer]

// RedisTLS returns the TLS-only Redis server of this test process, started
// on first use. Tests share it: use a key prefix of your own.
func RedisTLS(tb testing.TB) RedisTLSServer {
	tb.Helper()
	requireMain(tb)
	return *rdTLSLazy.get(tb, "Redis (TLS)", startRedisTLS)
}

func startRedisTLS() (*RedisTLSServer, error) {
	bin := lookBinary([]string{"redis-server"}, "/usr/bin/redis-server", "/usr/sbin/redis-server")
	if bin == "" {
		return nil, fmt.Errorf("redis-server not found in PATH or /usr/bin; install it with: apt-get install -y redis-server")
	}
	dir, err := serverDir("redis-tls")
	if err != nil {
		return nil, err
	}
	cert, err := newServerCert(dir, nil)
	if err != nil {
		return nil, err
	}
	caFile := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(caFile, cert.CAPEM, 0o644); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "redis.log")
	return startWithRetry(func(port int) (*RedisTLSServer, error) {
		p, err := startProcess(procSpec{
			name: "Redis (TLS)", path: bin, dir: dir, logPath: logPath, stopSig: syscall.SIGKILL,
			args: []string{
				"--port", "0",
				"--tls-port", strconv.Itoa(port),
				"--tls-cert-file", cert.CertFile,
				"--tls-key-file", cert.KeyFile,
				"--tls-ca-cert-file", caFile,
				"--tls-auth-clients", "no",
				"--bind", "127.0.0.1",
				"--dir", dir,
				"--save", "",
				"--appendonly", "no",
				"--daemonize", "no",
				"--loglevel", "warning",
			},
		})
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(cert.CAPEM)
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		err = p.waitReady(func(ctx context.Context) error {
			c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1,
				TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool, ServerName: "127.0.0.1"}})
			defer c.Close()
			return c.Ping(ctx).Err()
		})
		if err != nil {
			return nil, err
		}
		return &RedisTLSServer{Host: "127.0.0.1", Port: port, CACert: cert.CAPEM}, nil
	})
}
