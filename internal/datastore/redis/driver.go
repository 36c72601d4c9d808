package redis

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/lethe-dev/lethe/internal/datastore"
)

// Driver is the Redis datastore.Driver. It is safe for concurrent use.
type Driver struct {
	client *goredis.Client
}

var _ datastore.Driver = (*Driver)(nil)

// New returns a driver for cfg; it does not contact the server (Probe does).
// It uses Host, Port (default 6379), RedisDB, Username, Password, TLS
// (Disable: plain; Require: TLS without verifying the certificate;
// VerifyFull, the default: TLS verified against CABundle and Host),
// MaxConnections (pool size, default 4) and StatementTimeout (read and write
// timeout per command, default 10s).
func New(_ context.Context, cfg datastore.Config) (*Driver, error) {
	if cfg.Host == "" {
		return nil, fmt.Errorf("%w: redis: no host", datastore.ErrSettings)
	}
	port := cfg.Port
	if port == 0 {
		port = 6379
	}
	if cfg.RedisDB < 0 {
		return nil, fmt.Errorf("%w: redis: negative logical database", datastore.ErrSettings)
	}
	opts := &goredis.Options{
		Addr:            net.JoinHostPort(cfg.Host, strconv.Itoa(port)),
		Username:        cfg.Username,
		Password:        cfg.Password,
		DB:              cfg.RedisDB,
		ClientName:      "lethe",
		DialTimeout:     5 * time.Second,
		ReadTimeout:     10 * time.Second,
		WriteTimeout:    10 * time.Second,
		PoolSize:        4,
		MaxRetries:      2,
		DisableIdentity: true,
		// No CLIENT MAINT_NOTIFICATIONS handshake: plain servers reject it.
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	}
	if cfg.MaxConnections > 0 {
		opts.PoolSize = cfg.MaxConnections
	}
	if cfg.StatementTimeout > 0 {
		opts.ReadTimeout = cfg.StatementTimeout
		opts.WriteTimeout = cfg.StatementTimeout
	}
	tlsConfig, err := cfg.ClientTLS(cfg.Host)
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	opts.TLSConfig = tlsConfig
	opts.Dialer = dialer(cfg.NetworkPolicy(), tlsConfig, opts.DialTimeout)
	return &Driver{client: goredis.NewClient(opts)}, nil
}

// dialer connects through the manager's network policy and, with a TLS
// configuration, completes the handshake (verifying the certificate against
// the DataStore's host, its ServerName) before go-redis sends anything: a
// custom Options.Dialer replaces go-redis's own TLS dialing.
func dialer(policy *datastore.NetworkPolicy, tlsConfig *tls.Config, timeout time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		conn, err := policy.DialContext(ctx, network, addr)
		if err != nil || tlsConfig == nil {
			return conn, err
		}
		tc := tls.Client(conn, tlsConfig)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = conn.Close()
			return nil, err
		}
		return tc, nil
	}
}

// Close releases the connections.
func (d *Driver) Close() error { return d.client.Close() }

// Probe checks reachability, credentials and the logical database, and
// reports redis_version from INFO server.
func (d *Driver) Probe(ctx context.Context) (datastore.ServerInfo, error) {
	info, err := d.client.Info(ctx, "server").Result()
	if err != nil {
		return datastore.ServerInfo{}, classify("probe", err)
	}
	v := "unknown"
	for _, line := range strings.Split(info, "\n") {
		if s, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
			v = s
			break
		}
	}
	return datastore.ServerInfo{Version: "Redis " + v}, nil
}

// Describe validates the collection and samples it: the types of up to 16
// matching keys (CollectionInfo.KeyTypes), the fields of sampled hashes
// (Columns, type "string"), and an estimate of the number of matching keys
// (exact when the whole keyspace fits in the 16 SCAN calls it makes;
// otherwise extrapolated from the share of the hash table SCAN has
// visited). An empty collection is not an error.
func (d *Driver) Describe(ctx context.Context, c datastore.Collection) (datastore.CollectionInfo, error) {
	pat, err := parsePattern(c.Pattern)
	if err != nil {
		return datastore.CollectionInfo{}, err
	}
	if _, err := recordUnitOf(c.TimestampSource); err != nil {
		return datastore.CollectionInfo{}, err
	}
	match := pat.glob(nil)
	var (
		cursor  uint64
		matched int64
		sample  []string
		vals    []string
		ok      bool
	)
	for calls := 0; calls < 16; calls++ {
		keys, next, err := d.client.Scan(ctx, cursor, match, 1000).Result()
		if err != nil {
			return datastore.CollectionInfo{}, classify("describe: scan", err)
		}
		for _, k := range keys {
			if vals, ok = pat.Values(k, vals); ok {
				matched++
				if len(sample) < 16 && !slices.Contains(sample, k) {
					sample = append(sample, k)
				}
			}
		}
		cursor = next
		if cursor == 0 {
			break
		}
	}
	info := datastore.CollectionInfo{
		Columns:       map[string]datastore.Column{},
		KeyTypes:      map[string]int64{},
		EstimatedRows: matched,
	}
	if cursor != 0 {
		// SCAN's cursor counts buckets in bit-reversed order: its reversal,
		// read as a fraction of 2^64, is the share of the table visited.
		if frac := float64(bits.Reverse64(cursor)) / math.Exp2(64); frac > 0 {
			info.EstimatedRows = int64(float64(matched) / frac)
		}
	}
	if len(sample) == 0 {
		return info, nil
	}
	pipe := d.client.Pipeline()
	types := make([]*goredis.StatusCmd, len(sample))
	for i, k := range sample {
		types[i] = pipe.Type(ctx, k)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return datastore.CollectionInfo{}, classify("describe: type", err)
	}
	var hashes []string
	for i, t := range types {
		typ := t.Val()
		if typ == "none" {
			continue
		}
		info.KeyTypes[typ]++
		if typ == "hash" && len(hashes) < 4 {
			hashes = append(hashes, sample[i])
		}
	}
	for _, k := range hashes {
		fields, _, err := d.client.HScan(ctx, k, 0, "", 100).Result()
		if err != nil {
			return datastore.CollectionInfo{}, classify("describe: hscan", err)
		}
		for i := 0; i < len(fields); i += 2 {
			f := fields[i]
			info.Columns[f] = datastore.Column{Name: f, Type: "string", Nullable: true}
		}
	}
	return info, nil
}

// Total returns the records of the collection: the keys matching the
// pattern with every placeholder as '*' (read back to check the delimiters),
// or their members / entries for SortedSetScore / StreamID collections.
func (d *Driver) Total(ctx context.Context, c datastore.Collection) (int64, error) {
	pl, err := newPlan(datastore.Operation{Collection: c, Delete: true}, true)
	if err != nil {
		return 0, err
	}
	return d.count(ctx, pl, func(ctx context.Context, keys []string) (int64, error) {
		if pl.unit == unitKeys {
			return int64(len(keys)), nil
		}
		return d.recordsOf(ctx, keys)
	})
}

// classify wraps err with one of the datastore errors.
func classify(what string, err error) error {
	if err == nil {
		return nil
	}
	if na := datastore.AsNotAllowed(err); na != nil {
		return fmt.Errorf("redis: %s: %w", what, na)
	}
	for _, known := range []error{datastore.ErrInvalid, datastore.ErrUnavailable, datastore.ErrAuthentication, datastore.ErrNotFound} {
		if errors.Is(err, known) {
			return fmt.Errorf("redis: %s: %w", what, err)
		}
	}
	kind := datastore.ErrUnavailable
	var rerr goredis.Error
	if errors.As(err, &rerr) && !errors.Is(err, io.EOF) {
		msg := rerr.Error()
		code, _, _ := strings.Cut(msg, " ")
		switch {
		case code == "NOAUTH" || code == "WRONGPASS" || code == "NOPERM" ||
			strings.Contains(msg, "invalid password") || strings.Contains(msg, "invalid username-password"):
			kind = datastore.ErrAuthentication
		case code == "LOADING" || code == "BUSY" || code == "TRYAGAIN" || code == "MASTERDOWN" ||
			code == "CLUSTERDOWN" || code == "READONLY" || code == "OOM" || code == "NOREPLICAS":
			kind = datastore.ErrUnavailable
		case strings.Contains(msg, "DB index is out of range") || strings.Contains(msg, "invalid DB index"):
			kind = datastore.ErrNotFound
		default:
			kind = datastore.ErrInvalid
		}
	}
	return fmt.Errorf("redis: %s: %w: %w", what, kind, err)
}
