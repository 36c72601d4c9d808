package redis

import (
	"context"
	"fmt"
	"slices"

	goredis "github.com/redis/go-redis/v9"

	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/mask"
)

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
