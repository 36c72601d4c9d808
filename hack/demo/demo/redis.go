package demo

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/lethe-dev/lethe/internal/servers"
)

// redisStore holds the shop's login sessions and shopping carts: hashes
// session:<user_id>:<session id> and cart:<user_id>, dated by their
// last_seen and updated_at fields (Unix seconds).
type redisStore struct {
	srv *servers.Redis
	c   *redis.Client
}

func (s *redisStore) name() string   { return "Redis" }
func (s *redisStore) policy() string { return "shop-sessions-retention" }

// start starts redis-server without persistence (internal/servers).
func (s *redisStore) start(ctx context.Context, r *run) error {
	srv, err := r.srv.StartRedis(ctx, servers.RedisOptions{})
	if err != nil {
		return err
	}
	s.srv = srv
	s.c = redis.NewClient(&redis.Options{Addr: srv.Addr()})
	return nil
}

func (s *redisStore) describe() string {
	return fmt.Sprintf("Redis %s up on %s", s.srv.Version, s.srv.Addr())
}

func (s *redisStore) explore() string {
	return fmt.Sprintf("redis-cli -h %s -p %d --scan --pattern 'session:100042:*'   # Redis", s.srv.Host, s.srv.Port)
}

func (s *redisStore) close() {
	if s.c != nil {
		_ = s.c.Close()
	}
}

func (s *redisStore) manifests() ([]*unstructured.Unstructured, error) {
	return manifest("redis.yaml", map[string]any{"Host": s.srv.Host, "Port": s.srv.Port})
}

// load writes one or two sessions per user (40% used in the last 30 days)
// and a cart for every fourth user, pipelined.
func (s *redisStore) load(ctx context.Context, users int) (int64, error) {
	rnd := rand.New(rand.NewPCG(7, uint64(users)))
	now := time.Now()
	// ago is whole days plus at most 22 hours, like the SQL data.
	ago := func(minDays, maxDays int) int64 {
		d := time.Duration(minDays+rnd.IntN(maxDays-minDays))*24*time.Hour + time.Duration(rnd.Int64N(int64(22*time.Hour)))
		return now.Add(-d).Unix()
	}
	agents := []string{"ShopApp/8.4 (iPhone; iOS 17.5)", "ShopApp/8.4 (Android 14; 23127PN0CC)", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/125.0"}
	pipe := s.c.Pipeline()
	var n int64
	flush := func(force bool) error {
		if pipe.Len() >= 1000 || (force && pipe.Len() > 0) {
			_, err := pipe.Exec(ctx)
			return err
		}
		return nil
	}
	session := func(uid int64, lastSeen int64) {
		key := fmt.Sprintf("session:%d:%016x", uid, rnd.Uint64())
		pipe.HSet(ctx, key, "user_id", uid, "last_seen", lastSeen,
			"ip", fmt.Sprintf("%d.%d.%d.%d", 36+rnd.IntN(180), rnd.IntN(256), rnd.IntN(256), 1+rnd.IntN(254)),
			"user_agent", agents[rnd.IntN(len(agents))])
		n++
	}
	for i := 1; i <= users; i++ {
		uid := int64(100000 + i)
		for range 1 + rnd.IntN(2) {
			if rnd.Float64() < 0.4 {
				session(uid, ago(0, 30))
			} else {
				session(uid, ago(30, 365))
			}
		}
		if i%4 == 0 || uid == MinorUserID || uid == AdaUserID {
			updated := ago(0, 60)
			if rnd.Float64() < 0.5 {
				updated = ago(90, 400)
			}
			pipe.HSet(ctx, "cart:"+strconv.FormatInt(uid, 10), "items", fmt.Sprintf("SKU-%d x1", 10000+rnd.IntN(90000)),
				"address", "Room 1203, No. 88 Nanjing West Road, Jing'an District, Shanghai", "updated_at", updated)
			n++
		}
		if err := flush(false); err != nil {
			return n, err
		}
	}
	// The minor was logged in yesterday.
	session(MinorUserID, ago(1, 2))
	return n, flush(true)
}

// count counts keys per pattern and those past the policy's periods.
func (s *redisStore) count(ctx context.Context, snap *Snapshot, subs []subject) error {
	now := time.Now()
	for _, c := range []struct {
		table, match, field, promise string
		period                       time.Duration
	}{
		{"sessions", "session:*", "last_seen", "login sessions deleted 30 days after last use", 30 * 24 * time.Hour},
		{"carts", "cart:*", "updated_at", "abandoned carts deleted after 90 days", 90 * 24 * time.Hour},
	} {
		var old int64
		cutoff := now.Add(-c.period).Unix()
		// SCAN may return a key twice: count each once.
		keys, err := s.scan(ctx, c.match)
		if err != nil {
			return err
		}
		pipe := s.c.Pipeline()
		var cmds []*redis.StringCmd
		check := func() error {
			if len(cmds) == 0 {
				return nil
			}
			if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
				return err
			}
			for _, cmd := range cmds {
				if v, err := cmd.Int64(); err == nil && v < cutoff {
					old++
				}
			}
			cmds = cmds[:0]
			return nil
		}
		for key := range keys {
			cmds = append(cmds, pipe.HGet(ctx, key, c.field))
			if len(cmds) >= 1000 {
				if err := check(); err != nil {
					return err
				}
			}
		}
		if err := check(); err != nil {
			return err
		}
		snap.Tables = append(snap.Tables, TableCount{Store: s.name(), Table: c.table, Rows: int64(len(keys)), Anonymized: -1})
		snap.Promises = append(snap.Promises, Promise{Name: c.promise, Store: s.name(), Table: c.table, Violations: old})
	}
	return addSubjectRows(snap, subs, s.name(), func(sub subject) (map[string]int64, error) {
		sessions, err := s.scan(ctx, fmt.Sprintf("session:%d:*", sub.userID))
		if err != nil {
			return nil, err
		}
		carts, err := s.c.Exists(ctx, fmt.Sprintf("cart:%d", sub.userID)).Result()
		return map[string]int64{"sessions": int64(len(sessions)), "carts": carts}, err
	})
}

// scan returns the keys matching a pattern, each once.
func (s *redisStore) scan(ctx context.Context, match string) (map[string]struct{}, error) {
	keys := map[string]struct{}{}
	iter := s.c.Scan(ctx, 0, match, 1000).Iterator()
	for iter.Next(ctx) {
		keys[iter.Val()] = struct{}{}
	}
	return keys, iter.Err()
}
