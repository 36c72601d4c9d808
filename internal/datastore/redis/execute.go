package redis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	goredis "github.com/redis/go-redis/v9"

	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/mask"
)

// Scripts. Each runs atomically on the server, which is what makes the
// compare-and-delete and compare-and-set steps safe against the application
// writing at the same time. They are loaded (SCRIPT LOAD) at the head of
// every pipeline that uses them, so a SCRIPT FLUSH or a restarted server
// never leaves a pipeline with NOSCRIPT.
var (
	// KEYS: keys; ARGV[1]: hash field; ARGV[1+i]: the value read for KEYS[i].
	// Unlinks the keys whose field still holds the value read.
	casUnlinkScript = newScript(`
local n = 0
for i, k in ipairs(KEYS) do
  local v = redis.pcall('HGET', k, ARGV[1])
  if v == ARGV[i + 1] then
    n = n + redis.call('UNLINK', k)
  end
end
return n`)

	// KEYS: keys; ARGV[1]: hash field; ARGV[2]: threshold in Unix seconds.
	// Unlinks the keys whose field holds whole Unix seconds below the
	// threshold, at once; returns {unlinked, {index, value, …}} with the
	// values written otherwise (RFC 3339, decimals…), which the client
	// parses and deletes with casUnlinkScript.
	ageUnlinkScript = newScript(`
local t = tonumber(ARGV[2])
local n = 0
local other = {}
for i, k in ipairs(KEYS) do
  local v = redis.pcall('HGET', k, ARGV[1])
  if type(v) == 'string' then
    if #v <= 15 and string.match(v, '^%d+$') then
      if tonumber(v) < t then
        n = n + redis.call('UNLINK', k)
      end
    else
      other[#other + 1] = i
      other[#other + 1] = v
    end
  end
end
return {n, other}`)

	// KEYS: keys; ARGV[1]: cutoff in Unix milliseconds. Unlinks the keys
	// whose last access (server TIME − OBJECT IDLETIME) is before it.
	idleUnlinkScript = newScript(`
local t = redis.call('TIME')
local d = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(ARGV[1])
local n = 0
for _, k in ipairs(KEYS) do
  local idle = redis.pcall('OBJECT', 'IDLETIME', k)
  if type(idle) == 'table' and idle.err then
    return idle
  end
  if type(idle) == 'number' and idle * 1000 > d then
    n = n + redis.call('UNLINK', k)
  end
end
return n`)

	// KEYS[1]: key; ARGV[1]: exclusive max score; ARGV[2]: most members to
	// remove. Returns {removed, still selected}.
	zTrimScript = newScript(`
if redis.call('TYPE', KEYS[1]).ok ~= 'zset' then
  return {0, 0}
end
local n = redis.call('ZCOUNT', KEYS[1], '-inf', ARGV[1])
if n == 0 then
  return {0, 0}
end
local lim = tonumber(ARGV[2])
if n <= lim then
  return {redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1]), 0}
end
return {redis.call('ZREMRANGEBYRANK', KEYS[1], 0, lim - 1), n - lim}`)

	// KEYS: keys; ARGV[1]: "1" to unlink them. Returns their records:
	// members of sorted sets, entries of streams, 1 for other keys.
	recordsScript = newScript(`
local n = 0
for _, k in ipairs(KEYS) do
  local t = redis.call('TYPE', k).ok
  if t == 'zset' then
    n = n + redis.call('ZCARD', k)
  elseif t == 'stream' then
    n = n + redis.call('XLEN', k)
  elseif t ~= 'none' then
    n = n + 1
  end
  if t ~= 'none' and ARGV[1] == '1' then
    redis.call('UNLINK', k)
  end
end
return n`)

	// KEYS[1]: hash; ARGV[1]: m; then m triples: field, value read ("0" when
	// absent, "1".. value), value to write ("0" to delete the field, "1"..
	// value, "-" to leave it). Returns 1 when written, 0 when the key is
	// gone, -1 when a field changed since it was read, -2 when not a hash.
	anonScript = newScript(`
local t = redis.call('TYPE', KEYS[1]).ok
if t == 'none' then
  return 0
end
if t ~= 'hash' then
  return -2
end
local m = tonumber(ARGV[1])
for i = 0, m - 1 do
  local cur = redis.call('HGET', KEYS[1], ARGV[2 + 3 * i])
  if cur then cur = '1' .. cur else cur = '0' end
  if cur ~= ARGV[3 + 3 * i] then
    return -1
  end
end
for i = 0, m - 1 do
  local f, nv = ARGV[2 + 3 * i], ARGV[4 + 3 * i]
  if nv == '0' then
    redis.call('HDEL', KEYS[1], f)
  elseif nv ~= '-' then
    redis.call('HSET', KEYS[1], f, string.sub(nv, 2))
  end
end
return 1`)
)

// chunk is the most keys per UNLINK, EXISTS or script call.
const chunk = 1000

// Execute runs one batch: about op.BatchSize selected keys from cursor on.
func (d *Driver) Execute(ctx context.Context, op datastore.Operation, cursor string) (datastore.Batch, error) {
	pl, err := newPlan(op, false)
	if err != nil {
		return datastore.Batch{Cursor: cursor}, err
	}
	keys, next, done, err := d.collect(ctx, pl, cursor, pl.batch, nil)
	if err != nil {
		return datastore.Batch{Cursor: cursor}, err
	}
	n, err := d.apply(ctx, pl, keys, false)
	if err != nil {
		return datastore.Batch{Affected: n, Cursor: cursor}, err
	}
	b := datastore.Batch{Affected: n, Cursor: next, Done: done}
	if done {
		b.Cursor = ""
	}
	return b, nil
}

// Count returns how many records Execute would affect now, scanning the
// whole collection without changing it.
func (d *Driver) Count(ctx context.Context, op datastore.Operation) (int64, error) {
	pl, err := newPlan(op, false)
	if err != nil {
		return 0, err
	}
	return d.count(ctx, pl, func(ctx context.Context, keys []string) (int64, error) {
		return d.apply(ctx, pl, keys, true)
	})
}

// count runs fn over every selected key, each once, in chunks.
func (d *Driver) count(ctx context.Context, pl *plan, fn func(context.Context, []string) (int64, error)) (int64, error) {
	seen := newKeySet()
	var total int64
	cursor := ""
	for {
		keys, next, done, err := d.collect(ctx, pl, cursor, chunk, seen)
		if err != nil {
			return 0, err
		}
		if len(keys) > 0 {
			n, err := fn(ctx, keys)
			if err != nil {
				return 0, err
			}
			total += n
		}
		if done {
			return total, nil
		}
		cursor = next
	}
}

// collect gathers about budget selected keys from cursor on. seen, when not
// nil, drops keys already returned by an earlier call.
func (d *Driver) collect(ctx context.Context, pl *plan, cursor string, budget int, seen *keySet) (keys []string, next string, done bool, err error) {
	pos, err := pl.parseCursor(cursor)
	if err != nil {
		return nil, "", false, err
	}
	var buf []string
	var ok bool
	if pl.keyMode {
		i := int(pos)
		for ; i < len(pl.keys) && len(keys) < budget; i++ {
			if buf, ok = pl.selects(pl.keys[i], buf); ok {
				keys = append(keys, pl.keys[i])
			}
		}
		return keys, pl.formatCursor(uint64(i)), i == len(pl.keys), nil
	}
	count := int64(min(budget, maxScanCount))
	batch := map[string]struct{}{}
	for calls := 0; calls < maxScanCalls; calls++ {
		page, nextPos, err := d.client.Scan(ctx, pos, pl.match, count).Result()
		if err != nil {
			return nil, "", false, classify("scan", err)
		}
		if int64(len(page)) < count/8 && count < sparseScanCount {
			// The pattern is selective: visit more of the keyspace per call
			// (SCAN's COUNT is buckets visited, not keys returned).
			count = min(count*4, sparseScanCount)
		}
		for _, k := range page {
			if buf, ok = pl.selects(k, buf); !ok {
				continue
			}
			if _, dup := batch[k]; dup {
				continue
			}
			if seen != nil && !seen.add(k) {
				continue
			}
			batch[k] = struct{}{}
			keys = append(keys, k)
		}
		pos = nextPos
		if pos == 0 || len(keys) >= budget {
			break
		}
	}
	return keys, pl.formatCursor(pos), pos == 0, nil
}

// apply deletes, trims or anonymizes the records of keys (or, when dry,
// counts what it would).
func (d *Driver) apply(ctx context.Context, pl *plan, keys []string, dry bool) (int64, error) {
	if len(keys) == 0 {
		return 0, nil
	}
	if !pl.del {
		return d.anonymize(ctx, pl, keys, dry)
	}
	switch pl.source {
	case "":
		return d.eraseKeys(ctx, pl, keys, dry)
	case sourceHashField:
		if !dry {
			return d.ageUnlink(ctx, pl, keys)
		}
		cands, _, err := d.hashAged(ctx, pl, keys)
		return int64(len(cands)), err
	case sourceIdleTime:
		if dry {
			cands, err := d.idleAged(ctx, pl, keys)
			return int64(len(cands)), err
		}
		return d.idleUnlink(ctx, pl, keys)
	case sourceSortedSetScore:
		return d.zTrim(ctx, pl, keys, dry)
	case sourceStreamID:
		return d.xTrim(ctx, pl, keys, dry)
	}
	return 0, fmt.Errorf("%w: redis: timestamp source %q", datastore.ErrInvalid, pl.source)
}

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

// runChunked runs a script over keys in chunks, in one pipeline, and sums
// its integer results.
func (d *Driver) runChunked(ctx context.Context, s script, keys []string, args ...any) (int64, error) {
	pipe := d.client.Pipeline()
	pipe.ScriptLoad(ctx, s.src)
	var cmds []*goredis.Cmd
	for i := 0; i < len(keys); i += chunk {
		cmds = append(cmds, s.EvalSha(ctx, pipe, keys[i:min(i+chunk, len(keys))], args...))
	}
	_, err := pipe.Exec(ctx)
	var n int64
	for _, c := range cmds {
		v, _ := c.Int64()
		n += v
	}
	if err != nil {
		return n, classify("script", err)
	}
	return n, nil
}

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
	pipe := d.client.Pipeline()
	pipe.ScriptLoad(ctx, casUnlinkScript.src)
	var cmds []*goredis.Cmd
	for i := 0; i < len(keys); i += chunk {
		j := min(i+chunk, len(keys))
		args := make([]any, 0, 1+j-i)
		args = append(args, field)
		for _, v := range read[i:j] {
			args = append(args, v)
		}
		cmds = append(cmds, casUnlinkScript.EvalSha(ctx, pipe, keys[i:j], args...))
	}
	_, err := pipe.Exec(ctx)
	var n int64
	for _, c := range cmds {
		v, _ := c.Int64()
		n += v
	}
	if err != nil {
		return n, classify("unlink", err)
	}
	return n, nil
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

// textColumn is how Redis hash fields are masked: text of any length.
var textColumn = mask.Column{Type: mask.Text, Nullable: true}

// anonAttempts bounds how often a hash the application keeps changing is
// read again.
const anonAttempts = 5

// anonymize rewrites the fields of the selected hashes (or counts them).
func (d *Driver) anonymize(ctx context.Context, pl *plan, keys []string, dry bool) (int64, error) {
	if pl.source == sourceIdleTime {
		var err error
		if keys, err = d.idleAged(ctx, pl, keys); err != nil || len(keys) == 0 {
			return 0, err
		}
	}
	// Refuse non-hash keys before writing anything.
	pipe := d.client.Pipeline()
	types := make([]*goredis.StatusCmd, len(keys))
	for i, k := range keys {
		types[i] = pipe.Type(ctx, k)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, classify("type", err)
	}
	var hashes []string
	for i, t := range types {
		switch t.Val() {
		case "hash":
			hashes = append(hashes, keys[i])
		case "none":
		default:
			return 0, fmt.Errorf("%w: redis: only hashes can be anonymized; the collection has a key of type %s", datastore.ErrInvalid, t.Val())
		}
	}
	fields := make([]string, 0, len(pl.fields)+1)
	for _, f := range pl.fields {
		fields = append(fields, f.Field)
	}
	if pl.source == sourceHashField && !slices.Contains(fields, pl.field) {
		fields = append(fields, pl.field) // compared, never written
	}
	var n int64
	pending := hashes
	for attempt := 0; len(pending) > 0; attempt++ {
		if attempt == anonAttempts {
			return n, fmt.Errorf("%w: redis: %d hashes changed under every anonymization attempt", datastore.ErrUnavailable, len(pending))
		}
		pipe := d.client.Pipeline()
		reads := make([]*goredis.SliceCmd, len(pending))
		for i, k := range pending {
			reads[i] = pipe.HMGet(ctx, k, fields...)
		}
		if _, err := pipe.Exec(ctx); err != nil && !ignorable(err) {
			return n, classify("hmget", err)
		}
		type write struct {
			key  string
			args []any
		}
		var writes []write
		for i, r := range reads {
			vals, err := r.Result()
			if err != nil {
				if ignorable(err) {
					continue // gone or no longer a hash: checked again by the script
				}
				return n, classify("hmget", err)
			}
			if pl.source == sourceHashField {
				v, _ := vals[indexOf(fields, pl.field)].(string)
				if t, ok := parseTimestamp(v); !ok || !t.Before(pl.cutoff) {
					continue
				}
			}
			if dry {
				n++
				continue
			}
			args := []any{len(fields)}
			for j, f := range fields {
				cur, present := vals[j].(string)
				read := "0"
				if present {
					read = "1" + cur
				}
				out := "-"
				if m := maskFor(pl.fields, f); m != nil && present {
					nv, err := m.Apply(cur, textColumn)
					if err != nil {
						return n, fmt.Errorf("%w: redis: anonymizing field %s: %w", datastore.ErrInvalid, f, err)
					}
					switch nv := nv.(type) {
					case nil:
						out = "0"
					case string:
						out = "1" + nv
					case []byte:
						out = "1" + string(nv)
					default:
						return n, fmt.Errorf("%w: redis: strategy %s for field %s gives a %T, not text", datastore.ErrInvalid, m.Kind, f, nv)
					}
				}
				args = append(args, f, read, out)
			}
			writes = append(writes, write{key: pending[i], args: args})
		}
		if dry || len(writes) == 0 {
			return n, nil
		}
		pipe = d.client.Pipeline()
		pipe.ScriptLoad(ctx, anonScript.src)
		cmds := make([]*goredis.Cmd, len(writes))
		for i, w := range writes {
			cmds[i] = anonScript.EvalSha(ctx, pipe, []string{w.key}, w.args...)
		}
		_, err := pipe.Exec(ctx)
		var again []string
		for i, c := range cmds {
			switch v, _ := c.Int64(); v {
			case 1:
				n++
			case -1:
				again = append(again, writes[i].key)
			case -2:
				return n, fmt.Errorf("%w: redis: a key of the collection stopped being a hash while it was anonymized", datastore.ErrInvalid)
			}
		}
		if err != nil {
			return n, classify("anonymize", err)
		}
		pending = again
	}
	return n, nil
}

func maskFor(fms []datastore.FieldMask, field string) *mask.Strategy {
	for i := range fms {
		if fms[i].Field == field {
			return &fms[i].Strategy
		}
	}
	return nil
}

func indexOf(ss []string, s string) int {
	for i, x := range ss {
		if x == s {
			return i
		}
	}
	return -1
}

// script is a Lua script with its source, for SCRIPT LOAD.
type script struct {
	src string
	*goredis.Script
}

func newScript(src string) script { return script{src: src, Script: goredis.NewScript(src)} }
