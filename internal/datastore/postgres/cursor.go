package postgres

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"

	"github.com/lethe-dev/lethe/internal/datastore"
)

// mode is how batches walk the collection. It is fixed by the first batch and
// recorded in the cursor, so a resumed job walks the same way even if an index
// appeared or disappeared in between.
type mode string

const (
	// modeUnbounded: delete by subject. Every batch takes the first n
	// matching rows with no lower bound; deleted rows are gone, so nothing is
	// visited twice and nothing, not even a row inserted for the subject
	// while the job runs, is left behind.
	modeUnbounded mode = "s"
	// modeTime: delete by age along an index on the timestamp. The lower
	// bound is inclusive (ts >= last ts): rows of the last timestamp that are
	// still there are simply found again.
	modeTime mode = "t"
	// modeTimeKey: anonymize by age along an index on the timestamp. The
	// bound is strict on (ts, primary key), so no row is masked twice.
	modeTimeKey mode = "tk"
	// modeKey: strict bound on the primary key (anonymize by subject, or no
	// usable index on the timestamp).
	modeKey mode = "k"
)

// cursorState is the JSON behind Batch.Cursor.
type cursorState struct {
	V     int      `json:"v"`
	Table string   `json:"t"`           // tag of table and action, catches a cursor handed to another operation
	Mode  mode     `json:"m,omitempty"` // walk, fixed by the first batch
	Parts bool     `json:"p,omitempty"` // partition phase over (or not applicable)
	Key   []string `json:"k,omitempty"` // text of the last key columns (see mode)
	Done  bool     `json:"d,omitempty"` // nothing left; the key is dropped
	// Width, in microseconds, of the timestamp range the next estimated
	// range delete takes (modeTime only; 0: find the bound exactly).
	// Cursors written before it existed simply lack it.
	Width int64 `json:"w,omitempty"`
	// Size is the batch size Width aims at: a next batch of another size
	// (adaptive batches) scales the width to its own. Cursors written
	// before it existed lack it and are not scaled.
	Size int `json:"n,omitempty"`
	// Again: the last batch deleted fewer rows than it selected, and the
	// next one looks at the same range again (see advance).
	Again bool `json:"a,omitempty"`
}

func (c cursorState) encode() string {
	b, _ := json.Marshal(c)
	return string(b)
}

func decodeCursor(desc, s string) (cursorState, error) {
	var c cursorState
	if s == "" {
		return c, nil
	}
	if err := json.Unmarshal([]byte(s), &c); err != nil || c.V != 1 {
		// The cursor holds key values: never quote it.
		return c, invalid(desc, "cursor is not a cursor of this driver")
	}
	if c.Width < 0 || c.Width > maxWidth || (c.Width > 0 && c.Mode != modeTime) || c.Size < 0 || c.Size > MaxBatchSize {
		return c, invalid(desc, "cursor carries an invalid range width")
	}
	return c, nil
}

func tableTag(k tableKey, del bool) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(k.schema + "\x00" + k.name + "\x00" + strconv.FormatBool(del)))
	return strconv.FormatUint(uint64(h.Sum32()), 36)
}

// modes lists the walks valid for o, the preferred one first.
func modes(o datastore.Operation, p *plan) []mode {
	switch {
	case o.Delete && p.subject:
		return []mode{modeUnbounded}
	case p.subject:
		return []mode{modeKey}
	case o.Delete && p.t.leading[p.ts.Name]:
		return []mode{modeTime, modeKey}
	case o.Delete:
		return []mode{modeKey, modeTime}
	case p.t.leading[p.ts.Name]:
		return []mode{modeTimeKey, modeKey}
	default:
		return []mode{modeKey, modeTimeKey}
	}
}

// keyCols are the columns a mode orders by and keeps in the cursor.
func (p *plan) keyCols(m mode) []column {
	switch m {
	case modeTime:
		return []column{*p.ts}
	case modeTimeKey:
		cols := []column{*p.ts}
		for _, c := range p.pk {
			if c.Name != p.ts.Name {
				cols = append(cols, c)
			}
		}
		return cols
	case modeKey:
		return p.pk
	}
	return nil
}

// lowerBound is the cursor condition on alias t.
func lowerBound(desc string, a *args, m mode, keys []column, key []string) (string, error) {
	if len(key) == 0 || m == modeUnbounded {
		return "", nil
	}
	if len(key) != len(keys) {
		return "", invalid(desc, "cursor does not match the collection's key")
	}
	phs := make([]string, len(key))
	for i, k := range key {
		phs[i] = a.add(k) + "::text::" + keys[i].castType
	}
	if m == modeTime {
		return fmt.Sprintf("%s >= %s", ref("t", keys[0].Name), phs[0]), nil
	}
	refs := make([]string, len(keys))
	for i, c := range keys {
		refs[i] = ref("t", c.Name)
	}
	cond := fmt.Sprintf("(%s) > (%s)", strings.Join(refs, ", "), strings.Join(phs, ", "))
	if m == modeTimeKey && len(keys) > 1 {
		// Gives an index on the timestamp alone a start key; the row
		// comparison then only breaks ties.
		cond = fmt.Sprintf("%s >= %s AND %s", refs[0], phs[0], cond)
	}
	return cond, nil
}

// batchWhere is the condition of a batch on alias t: the plan's condition
// and the cursor's lower bound, with their arguments, and the key columns
// the walk orders by.
func (p *plan) batchWhere(cur *cursorState) (string, args, []column, error) {
	a := args{vals: slices.Clone(p.a.vals)}
	keys := p.keyCols(cur.Mode)
	lower, err := lowerBound(p.desc, &a, cur.Mode, keys, cur.Key)
	if err != nil {
		return "", a, nil, err
	}
	where := p.cond
	if lower != "" {
		where += "\n  AND " + lower
	}
	return where, a, keys, nil
}

func orderBy(alias string, keys []column, desc bool) string {
	parts := make([]string, len(keys))
	for i, c := range keys {
		parts[i] = ref(alias, c.Name)
		if desc {
			parts[i] += " DESC"
		}
	}
	return strings.Join(parts, ", ")
}
