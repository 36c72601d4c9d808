package redis

import (
	"context"

	goredis "github.com/redis/go-redis/v9"
)

// eraseKeys removes whole keys (subject erasure) and counts their records.
func (d *Driver) eraseKeys(ctx context.Context, pl *plan, keys []string, dry bool) (int64, error) {
	if pl.unit != unitKeys {
		if dry {
			return d.recordsOf(ctx, keys)
		}
		return d.runChunked(ctx, recordsScript, keys, "1")
	}
	pipe := d.client.Pipeline()
	var cmds []*goredis.IntCmd
	for i := 0; i < len(keys); i += chunk {
		part := keys[i:min(i+chunk, len(keys))]
		if dry {
			cmds = append(cmds, pipe.Exists(ctx, part...))
		} else {
			cmds = append(cmds, pipe.Unlink(ctx, part...))
		}
	}
	_, err := pipe.Exec(ctx)
	var n int64
	for _, c := range cmds {
		n += c.Val() // UNLINK counts only keys it removed: exact
	}
	if err != nil {
		return n, classify("unlink", err)
	}
	return n, nil
}

// recordsOf counts the records held by keys without touching them.
func (d *Driver) recordsOf(ctx context.Context, keys []string) (int64, error) {
	return d.runChunked(ctx, recordsScript, keys, "0")
}

// runChunked runs a script over keys in chunks, in one pipeline, with the
// same arguments for every chunk, and sums its integer results.
func (d *Driver) runChunked(ctx context.Context, s script, keys []string, args ...any) (int64, error) {
	return d.scriptChunks(ctx, "script", s, keys, func(int, int) []any { return args })
}

// scriptChunks runs a script over keys in chunks of at most chunk keys, in
// one pipeline, with args(lo, hi) the arguments of the chunk keys[lo:hi],
// and sums its integer results. what names the command in errors.
func (d *Driver) scriptChunks(ctx context.Context, what string, s script, keys []string, args func(lo, hi int) []any) (int64, error) {
	pipe := d.client.Pipeline()
	pipe.ScriptLoad(ctx, s.src)
	var cmds []*goredis.Cmd
	for lo := 0; lo < len(keys); lo += chunk {
		hi := min(lo+chunk, len(keys))
		cmds = append(cmds, s.EvalSha(ctx, pipe, keys[lo:hi], args(lo, hi)...))
	}
	_, err := pipe.Exec(ctx)
	var n int64
	for _, c := range cmds {
		v, _ := c.Int64()
		n += v
	}
	if err != nil {
		return n, classify(what, err)
	}
	return n, nil
}
