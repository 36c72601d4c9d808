package redis

import (
	"context"

	goredis "github.com/redis/go-redis/v9"
)

// zTrim removes (or counts) the members scored before the cutoff, at most
// pl.batch members per command, until none is left in each key.
func (d *Driver) zTrim(ctx context.Context, pl *plan, keys []string, dry bool) (int64, error) {
	bound := scoreBound(pl.cutoff)
	var n int64
	if dry {
		pipe := d.client.Pipeline()
		cmds := make([]*goredis.IntCmd, len(keys))
		for i, k := range keys {
			cmds[i] = pipe.ZCount(ctx, k, "-inf", bound)
		}
		if _, err := pipe.Exec(ctx); err != nil && !ignorable(err) {
			return 0, classify("zcount", err)
		}
		for _, c := range cmds {
			if c.Err() != nil && !ignorable(c.Err()) {
				return 0, classify("zcount", c.Err())
			}
			n += c.Val()
		}
		return n, nil
	}
	pending := keys
	for len(pending) > 0 {
		pipe := d.client.Pipeline()
		pipe.ScriptLoad(ctx, zTrimScript.src)
		cmds := make([]*goredis.Cmd, len(pending))
		for i, k := range pending {
			cmds[i] = zTrimScript.EvalSha(ctx, pipe, []string{k}, bound, pl.batch)
		}
		_, err := pipe.Exec(ctx)
		var again []string
		for i, c := range cmds {
			res, cerr := c.Int64Slice()
			if cerr != nil || len(res) != 2 {
				continue
			}
			n += res[0]
			if res[1] > 0 {
				again = append(again, pending[i])
			}
		}
		if err != nil {
			return n, classify("zremrangebyscore", err)
		}
		pending = again
	}
	return n, nil
}

// xTrim trims (or counts) the stream entries older than the cutoff.
func (d *Driver) xTrim(ctx context.Context, pl *plan, keys []string, dry bool) (int64, error) {
	minID, ok := minStreamID(pl.cutoff)
	if !ok {
		return 0, nil
	}
	var n int64
	if dry {
		for _, k := range keys {
			start := "-"
			for {
				msgs, err := d.client.XRangeN(ctx, k, start, "("+minID, 1000).Result()
				if err != nil {
					if ignorable(err) {
						break
					}
					return 0, classify("xrange", err)
				}
				n += int64(len(msgs))
				if len(msgs) < 1000 {
					break
				}
				start = "(" + msgs[len(msgs)-1].ID
			}
		}
		return n, nil
	}
	pipe := d.client.Pipeline()
	cmds := make([]*goredis.IntCmd, len(keys))
	for i, k := range keys {
		cmds[i] = pipe.XTrimMinID(ctx, k, minID)
	}
	_, err := pipe.Exec(ctx)
	for _, c := range cmds {
		if c.Err() != nil && !ignorable(c.Err()) {
			return n, classify("xtrim", c.Err())
		}
		n += c.Val()
	}
	if err != nil && !ignorable(err) {
		return n, classify("xtrim", err)
	}
	return n, nil
}
