package redis

import (
	"context"
	"errors"
	"fmt"
	"strings"

	goredis "github.com/redis/go-redis/v9"

	"github.com/lethe-dev/lethe/internal/datastore"
)

// hashAged returns the keys whose timestamp field is before the cutoff, with
// the value read. Keys that are not hashes or cannot be dated are left out.
func (d *Driver) hashAged(ctx context.Context, pl *plan, keys []string) ([]string, []string, error) {
	pipe := d.client.Pipeline()
	cmds := make([]*goredis.StringCmd, len(keys))
	for i, k := range keys {
		cmds[i] = pipe.HGet(ctx, k, pl.field)
	}
	if _, err := pipe.Exec(ctx); err != nil && !ignorable(err) {
		return nil, nil, classify("hget", err)
	}
	var cands, read []string
	for i, c := range cmds {
		v, err := c.Result()
		if err != nil {
			if ignorable(err) {
				continue
			}
			return nil, nil, classify("hget", err)
		}
		if t, ok := parseTimestamp(v); ok && t.Before(pl.cutoff) {
			cands = append(cands, keys[i])
			read = append(read, v)
		}
	}
	return cands, read, nil
}

// ignorable: a missing key or field, or a key of another type.
func ignorable(err error) bool {
	return errors.Is(err, goredis.Nil) || (err != nil && strings.HasPrefix(err.Error(), "WRONGTYPE"))
}

// ageUnlink deletes the keys whose timestamp field is before the cutoff:
// whole Unix seconds are compared inside one script; other values come back,
// are parsed here, and the old ones are deleted if still unchanged.
func (d *Driver) ageUnlink(ctx context.Context, pl *plan, keys []string) (int64, error) {
	threshold := pl.cutoff.Unix() // v < cutoff ⟺ v < ⌈cutoff⌉ for whole seconds v
	if pl.cutoff.Nanosecond() > 0 {
		threshold++
	}
	pipe := d.client.Pipeline()
	pipe.ScriptLoad(ctx, ageUnlinkScript.src)
	type part struct {
		keys []string
		cmd  *goredis.Cmd
	}
	var parts []part
	for i := 0; i < len(keys); i += chunk {
		ks := keys[i:min(i+chunk, len(keys))]
		parts = append(parts, part{ks, ageUnlinkScript.EvalSha(ctx, pipe, ks, pl.field, threshold)})
	}
	_, err := pipe.Exec(ctx)
	var (
		n          int64
		cands, old []string
	)
	for _, p := range parts {
		res, cerr := p.cmd.Slice()
		if cerr != nil || len(res) != 2 {
			continue
		}
		m, _ := res[0].(int64)
		n += m
		other, _ := res[1].([]any)
		for j := 0; j+1 < len(other); j += 2 {
			i, _ := other[j].(int64)
			v, _ := other[j+1].(string)
			if i < 1 || int(i) > len(p.keys) {
				continue
			}
			if t, ok := parseTimestamp(v); ok && t.Before(pl.cutoff) {
				cands = append(cands, p.keys[i-1])
				old = append(old, v)
			}
		}
	}
	if err != nil {
		return n, classify("unlink", err)
	}
	m, err := d.casUnlink(ctx, pl.field, cands, old)
	return n + m, err
}

// casUnlink unlinks the keys whose field still holds the value read.
func (d *Driver) casUnlink(ctx context.Context, field string, keys, read []string) (int64, error) {
	if len(keys) == 0 {
		return 0, nil
	}
	return d.scriptChunks(ctx, "unlink", casUnlinkScript, keys, func(lo, hi int) []any {
		args := make([]any, 0, 1+hi-lo)
		args = append(args, field)
		for _, v := range read[lo:hi] {
			args = append(args, v)
		}
		return args
	})
}

// idleAged returns the keys last accessed before the cutoff, by the server's
// clock (see the package documentation).
func (d *Driver) idleAged(ctx context.Context, pl *plan, keys []string) ([]string, error) {
	now, err := d.client.Time(ctx).Result()
	if err != nil {
		return nil, classify("time", err)
	}
	limit := now.UnixMilli() - pl.cutoff.UnixMilli()
	pipe := d.client.Pipeline()
	cmds := make([]*goredis.DurationCmd, len(keys))
	for i, k := range keys {
		cmds[i] = pipe.ObjectIdleTime(ctx, k)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, goredis.Nil) {
		return nil, idleError(err)
	}
	var out []string
	for i, c := range cmds {
		idle, err := c.Result()
		if err != nil {
			if errors.Is(err, goredis.Nil) {
				continue
			}
			return nil, idleError(err)
		}
		if int64(idle/1e9)*1000 > limit {
			out = append(out, keys[i])
		}
	}
	return out, nil
}

func idleError(err error) error {
	if strings.Contains(err.Error(), "LFU") {
		return fmt.Errorf("%w: redis: the server's maxmemory-policy is LFU, which does not track idle time: %w", datastore.ErrInvalid, err)
	}
	return classify("object idletime", err)
}

// idleUnlink unlinks the keys idle since before the cutoff, testing and
// unlinking in one script.
func (d *Driver) idleUnlink(ctx context.Context, pl *plan, keys []string) (int64, error) {
	n, err := d.runChunked(ctx, idleUnlinkScript, keys, pl.cutoff.UnixMilli())
	if err != nil && strings.Contains(err.Error(), "LFU") {
		return n, idleError(err)
	}
	return n, err
}
