package testharness

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lethe-dev/lethe/internal/servers"
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

// rdPool is the Redis server of this test process and its logical
// databases not held by a running test.
type rdPool struct {
	srv *servers.Redis

	mu   sync.Mutex
	free []int // ascending
}

var rdLazy lazy[*rdPool]

// Redis returns a logical database of its own, flushed, on a throwaway
// redis-server (or on the server of LETHE_TEST_REDIS_ADDR). The server starts
// on first use; the database returns to the pool when the test ends.
func Redis(tb testing.TB) RedisServer {
	tb.Helper()
	requireMain(tb)
	pool := rdLazy.get(tb, "Redis", startRedis)
	srv := pool.srv

	pool.mu.Lock()
	if len(pool.free) == 0 {
		pool.mu.Unlock()
		tb.Fatalf("testharness: Redis: every logical database of %s is held by a running test", srv.Addr())
	}
	db := pool.free[0]
	pool.free = pool.free[1:]
	pool.mu.Unlock()
	tb.Cleanup(func() {
		pool.mu.Lock()
		defer pool.mu.Unlock()
		i := 0
		for i < len(pool.free) && pool.free[i] < db {
			i++
		}
		pool.free = append(pool.free[:i], append([]int{db}, pool.free[i:]...)...)
	})

	c := redis.NewClient(&redis.Options{Addr: srv.Addr(), Password: srv.Password, DB: db})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.FlushDB(ctx).Err(); err != nil {
		tb.Fatalf("testharness: Redis: FLUSHDB %d: %v", db, err)
	}
	return RedisServer{Addr: srv.Addr(), Host: srv.Host, Port: srv.Port, Password: srv.Password, DB: db}
}

func startRedis() (*rdPool, error) {
	ctx := context.Background()
	if addr := os.Getenv("LETHE_TEST_REDIS_ADDR"); addr != "" {
		srv, err := servers.ConnectRedis(ctx, addr)
		if err != nil {
			return nil, fmtEnvErr("LETHE_TEST_REDIS_ADDR", err)
		}
		// Logical database 0 of a developer's server is left alone.
		pool := &rdPool{srv: srv}
		for i := 1; i < srv.Databases; i++ {
			pool.free = append(pool.free, i)
		}
		return pool, nil
	}
	g, err := theGroup()
	if err != nil {
		return nil, err
	}
	srv, err := g.StartRedis(ctx, servers.RedisOptions{Databases: redisDatabases})
	if err != nil {
		return nil, orSet(err, "LETHE_TEST_REDIS_ADDR")
	}
	pool := &rdPool{srv: srv}
	for i := range srv.Databases {
		pool.free = append(pool.free, i)
	}
	return pool, nil
}

// RedisTLSServer is a throwaway redis-server that accepts only TLS, with a
// certificate (for 127.0.0.1 and localhost) from a throwaway authority.
type RedisTLSServer struct {
	Host   string
	Port   int
	CACert []byte // PEM certificate of the authority that signed the server's
}

var rdTLSLazy lazy[*servers.Redis]

// RedisTLS returns the TLS-only Redis server of this test process, started
// on first use. Tests share it: use a key prefix of your own.
func RedisTLS(tb testing.TB) RedisTLSServer {
	tb.Helper()
	requireMain(tb)
	srv := rdTLSLazy.get(tb, "Redis (TLS)", func() (*servers.Redis, error) {
		g, err := theGroup()
		if err != nil {
			return nil, err
		}
		return g.StartRedis(context.Background(), servers.RedisOptions{TLS: true})
	})
	return RedisTLSServer{Host: srv.Host, Port: srv.Port, CACert: srv.CACert}
}
