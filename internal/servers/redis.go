package servers

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is a running redis-server.
type Redis struct {
	Host      string
	Port      int
	Password  string // empty on a started server
	Version   string // redis_version of INFO server
	Databases int    // logical databases (SELECT 0 .. Databases-1)
	// CACert is the PEM certificate of the throwaway authority that signed
	// the server's certificate (for 127.0.0.1 and localhost) when it was
	// started with RedisOptions.TLS (it then accepts only TLS); nil
	// otherwise.
	CACert []byte
}

// Addr is host:port.
func (r *Redis) Addr() string { return net.JoinHostPort(r.Host, strconv.Itoa(r.Port)) }

// RedisOptions configure a started redis-server.
type RedisOptions struct {
	// Databases is the number of logical databases (default 16).
	Databases int
	// TLS makes the server accept only TLS, with a certificate of a
	// throwaway authority (Redis.CACert).
	TLS bool
}

// StartRedis starts a redis-server without persistence.
func (g *Group) StartRedis(ctx context.Context, o RedisOptions) (*Redis, error) {
	bin := lookBinary([]string{"redis-server"}, "/usr/bin/redis-server", "/usr/sbin/redis-server")
	if bin == "" {
		return nil, &MissingError{What: "redis-server", Where: "PATH or /usr/bin", Install: "apt-get install -y redis-server"}
	}
	if o.Databases <= 0 {
		o.Databases = 16
	}
	name := "redis"
	if o.TLS {
		name = "redis-tls"
	}
	dir, err := g.serverDir(name)
	if err != nil {
		return nil, err
	}
	args := []string{
		"--bind", "127.0.0.1",
		"--dir", dir,
		"--save", "",
		"--appendonly", "no",
		"--databases", strconv.Itoa(o.Databases),
		"--daemonize", "no",
		"--loglevel", "warning",
	}
	var tlsConfig *tls.Config
	var caCert []byte
	if o.TLS {
		cert, err := newServerCert(dir, nil)
		if err != nil {
			return nil, err
		}
		caFile := filepath.Join(dir, "ca.crt")
		if err := os.WriteFile(caFile, cert.CAPEM, 0o644); err != nil {
			return nil, err
		}
		args = append(args,
			"--tls-cert-file", cert.CertFile,
			"--tls-key-file", cert.KeyFile,
			"--tls-ca-cert-file", caFile,
			"--tls-auth-clients", "no")
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(cert.CAPEM)
		tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool, ServerName: "127.0.0.1"}
		caCert = cert.CAPEM
	}
	logPath := filepath.Join(dir, "redis.log")
	return startWithRetry(func(port int) (*Redis, error) {
		ports := []string{"--port", strconv.Itoa(port)}
		if o.TLS {
			ports = []string{"--port", "0", "--tls-port", strconv.Itoa(port)}
		}
		p, err := g.start(procSpec{
			name: "Redis", path: bin, dir: dir, logPath: logPath, stopSig: syscall.SIGKILL,
			args: append(ports, args...),
		})
		if err != nil {
			return nil, err
		}
		if o.TLS {
			p.name = "Redis (TLS)"
		}
		r := &Redis{Host: "127.0.0.1", Port: port, Databases: o.Databases, CACert: caCert}
		err = g.waitReady(ctx, p, func(ctx context.Context) error {
			c := redis.NewClient(&redis.Options{Addr: r.Addr(), MaxRetries: -1, TLSConfig: tlsConfig})
			defer c.Close()
			return r.readVersion(ctx, c)
		})
		if err != nil {
			return nil, err
		}
		return r, nil
	})
}

// readVersion reads redis_version from INFO server.
func (r *Redis) readVersion(ctx context.Context, c *redis.Client) error {
	info, err := c.Info(ctx, "server").Result()
	if err != nil {
		return err
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
			r.Version = v
		}
	}
	return nil
}

// ConnectRedis uses a server that already runs: host:port or
// redis://[:password@]host:port.
func ConnectRedis(ctx context.Context, addr string) (*Redis, error) {
	opts := &redis.Options{Addr: addr}
	if strings.Contains(addr, "://") {
		var err error
		if opts, err = redis.ParseURL(addr); err != nil {
			return nil, err
		}
		opts.DB = 0
	}
	c := redis.NewClient(opts)
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	host, portStr, _ := net.SplitHostPort(opts.Addr)
	port, _ := strconv.Atoi(portStr)
	r := &Redis{Host: host, Port: port, Password: opts.Password, Databases: 16}
	if err := r.readVersion(ctx, c); err != nil {
		return nil, err
	}
	if v, err := c.ConfigGet(ctx, "databases").Result(); err == nil {
		if d, err := strconv.Atoi(v["databases"]); err == nil && d > 1 {
			r.Databases = d
		}
	}
	return r, nil
}
