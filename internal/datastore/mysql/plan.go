package mysql

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/mask"
)

const (
	// inChunk bounds one IN (…) list; longer value lists become several
	// IN lists joined with OR (MariaDB turns lists of 1000 and more into a
	// derived table, and MySQL's range optimizer has a memory budget).
	inChunk = 500
	// maxBoundValues bounds the subject and held values of one operation:
	// every value is a bound parameter, and a prepared statement takes at
	// most 65,535.
	maxBoundValues = 30_000
)

// plan is an Operation resolved against the live schema: the SQL predicate
// that selects its rows and what is needed to batch over them.
type plan struct {
	op       string // for error messages
	t        *tableMeta
	qtable   string
	key      []*column
	keyIndex string // index to force for purges; "" lets the optimizer choose
	tag      string // identifies table and key in cursors

	// match selects the operation's rows (cutoff, subjects, not held); it
	// refers to the table's columns as `table`.`column`.
	match     string
	matchArgs []any
	// held is true for a row kept by a legal hold ("" when nothing can be).
	held     string
	heldArgs []any

	ts        *column
	cutoffArg any
	subjects  bool

	fields []fieldPlan
	batch  int
	loc    *time.Location
}

// fieldPlan is one anonymized column.
type fieldPlan struct {
	col      *column
	strategy mask.Strategy
	mcol     mask.Column
}

// plan resolves op. It reads table metadata (cached) for the collection and
// every table on its Via path.
func (d *Driver) plan(ctx context.Context, verb string, op datastore.Operation) (*plan, error) {
	name := tableName(op.Collection)
	p := &plan{op: verb + " on " + quote(name), loc: op.Collection.TimestampLocation}
	if p.loc == nil {
		p.loc = time.UTC
	}
	t, err := d.table(ctx, p.op, name)
	if err != nil {
		return nil, err
	}
	p.t = t
	p.qtable = quote(t.name)

	keyNames, keyIndex, err := d.batchKey(p.op, t, op.Collection)
	if err != nil {
		return nil, err
	}
	for _, k := range keyNames {
		c, _ := t.col(k)
		p.key = append(p.key, c)
	}
	p.keyIndex = keyIndex
	p.tag = cursorTag(t, p.key)

	p.batch = op.BatchSize
	if p.batch <= 0 {
		p.batch = defaultBatchSize
	}
	if p.batch > maxBatchSize {
		return nil, invalid(p.op, "batch size %d is above the limit of %d", op.BatchSize, maxBatchSize)
	}
	if n := countValues(op.Subjects) + countValues(op.Held); n > maxBoundValues {
		return nil, invalid(p.op, "%d subject and held identities in one operation, more than %d; split the request", n, maxBoundValues)
	}

	var conds []string
	if op.Cutoff != nil {
		if op.Collection.TimestampField == "" {
			return nil, invalid(p.op, "a cutoff needs the collection's timestamp field")
		}
		ts, err := timestampColumn(p.op, t, op.Collection.TimestampField)
		if err != nil {
			return nil, err
		}
		p.ts = ts
		p.cutoffArg = cutoffArg(ts, *op.Cutoff, p.loc)
		conds = append(conds, qualified(t.name, ts.name)+" < ?")
		p.matchArgs = append(p.matchArgs, p.cutoffArg)
	}
	if len(op.Subjects) > 0 {
		p.subjects = true
		expr, args, err := d.subjectsExpr(ctx, p, op)
		if err != nil {
			return nil, err
		}
		conds = append(conds, expr)
		p.matchArgs = append(p.matchArgs, args...)
	}
	if len(conds) == 0 {
		return nil, invalid(p.op, "the operation selects neither by cutoff nor by subject")
	}
	if countValues(op.Held) > 0 {
		expr, args, err := d.heldPathsExpr(ctx, p.op, t.name, t, op)
		if err != nil {
			return nil, err
		}
		if expr != "" {
			p.held, p.heldArgs = expr, args
			// NULL-safe: a row whose identity is NULL (or whose reference
			// leads nowhere) is not held.
			conds = append(conds, "("+expr+") IS NOT TRUE")
			p.matchArgs = append(p.matchArgs, args...)
		}
	}
	p.match = strings.Join(conds, " AND ")

	if !op.Delete {
		if len(op.Fields) == 0 {
			return nil, invalid(p.op, "anonymize without fields")
		}
		seen := map[string]bool{}
		for _, f := range op.Fields {
			c, err := lookupColumn(p.op, t, f.Field)
			if err != nil {
				return nil, err
			}
			lc := strings.ToLower(c.name)
			if seen[lc] {
				return nil, invalid(p.op, "field %s is anonymized twice", quote(c.name))
			}
			seen[lc] = true
			for _, k := range p.key {
				if k == c {
					return nil, invalid(p.op, "field %s is part of the key batches resume by; it cannot be anonymized", quote(c.name))
				}
			}
			mc := mask.Column{Type: c.maskType, MaxLength: c.maxChars, Nullable: c.nullable}
			if c.maskType == mask.Timestamp || c.maskType == mask.Date {
				mc.MaxLength = 0
			}
			if err := f.Strategy.Validate(mc); err != nil {
				return nil, &datastore.Error{Driver: library.Name, Op: p.op, Kind: datastore.KindInvalid, Reason: "field " + quote(c.name) + ": " + err.Error(), Err: err}
			}
			p.fields = append(p.fields, fieldPlan{col: c, strategy: f.Strategy, mcol: mc})
		}
	}
	// Purges walk the key index: the work of all batches together is one
	// pass over the table. Subject erasures let the optimizer start from the
	// identity index instead.
	if p.subjects {
		p.keyIndex = ""
	}
	return p, nil
}

// subjectsExpr selects the subjects' records: directly through the
// collection's identity fields, through every path of op.Paths, and by the
// sealed keys of op.Keys; a row matching any of them is selected.
func (d *Driver) subjectsExpr(ctx context.Context, p *plan, op datastore.Operation) (string, []any, error) {
	t := p.t
	var parts []string
	var args []any
	direct := false
	for typ := range op.Subjects {
		if _, ok := op.Collection.IdentityFields[typ]; ok {
			direct = true
		}
	}
	if direct || len(op.Paths) == 0 {
		e, a, err := d.subjectExpr(ctx, p.op, t.name, t, op.Collection, nil, op.Subjects, 0)
		if err != nil {
			return "", nil, err
		}
		parts, args = append(parts, e), append(args, a...)
	}
	for _, path := range op.Paths {
		e, a, err := d.subjectExpr(ctx, p.op, t.name, t, op.Collection, path, op.Subjects, 0)
		if err != nil {
			return "", nil, err
		}
		parts, args = append(parts, e), append(args, a...)
	}
	if len(op.Keys) > 0 {
		e, a, err := keysExpr(p.op, t, p.key, op.Keys)
		if err != nil {
			return "", nil, err
		}
		parts, args = append(parts, e), append(args, a...)
	}
	if len(parts) == 1 {
		return parts[0], args, nil
	}
	return "(" + strings.Join(parts, " OR ") + ")", args, nil
}

// keysExpr is true for the rows whose key is one of keys (text tuples in
// key order), as "(k1, k2) IN ((?, ?), ...)" in chunks.
func keysExpr(op string, t *tableMeta, key []*column, keys [][]string) (string, []any, error) {
	var lhs []string
	for _, c := range key {
		lhs = append(lhs, qualified(t.name, c.name))
	}
	tuple := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(key)), ", ") + ")"
	var parts []string
	var args []any
	var tuples []string
	flush := func() {
		if len(tuples) > 0 {
			parts = append(parts, "("+strings.Join(lhs, ", ")+") IN ("+strings.Join(tuples, ", ")+")")
			tuples = tuples[:0]
		}
	}
	for _, k := range keys {
		if len(k) != len(key) {
			return "", nil, invalid(op, "a sealed key has %d columns, the batch key %d", len(k), len(key))
		}
		row := make([]any, 0, len(k))
		ok := true
		for i, v := range k {
			a, fits, err := identityArg(op, key[i], v)
			if err != nil {
				return "", nil, err
			}
			ok = ok && fits
			row = append(row, a)
		}
		if !ok {
			continue
		}
		tuples = append(tuples, tuple)
		args = append(args, row...)
		if len(tuples) == inChunk {
			flush()
		}
	}
	flush()
	if len(parts) == 0 {
		return "FALSE", nil, nil
	}
	return "(" + strings.Join(parts, " OR ") + ")", args, nil
}

// heldPathsExpr is heldExpr over the collection itself and every path of
// op.HeldPaths, OR-ed; "" when no held identity type is reachable.
func (d *Driver) heldPathsExpr(ctx context.Context, op, ref string, t *tableMeta, o datastore.Operation) (string, []any, error) {
	paths := o.HeldPaths
	if len(paths) == 0 {
		paths = [][]datastore.Hop{nil}
	}
	var parts []string
	var args []any
	for _, path := range paths {
		e, a, err := d.heldExpr(ctx, op, ref, t, o.Collection, path, o.Held, 0)
		if err != nil {
			return "", nil, err
		}
		if e != "" {
			parts, args = append(parts, e), append(args, a...)
		}
	}
	return strings.Join(parts, " OR "), args, nil
}

// subjectExpr is the predicate "this row belongs to one of the subjects":
// directly through the collection's identity fields, or through the hops of
// via, each a nested IN subquery.
func (d *Driver) subjectExpr(ctx context.Context, op, ref string, t *tableMeta, c datastore.Collection, via []datastore.Hop, subjects map[string][]string, depth int) (string, []any, error) {
	if len(via) == 0 {
		var parts []string
		var args []any
		mapped := false
		for _, typ := range sortedKeys(subjects) {
			field, ok := c.IdentityFields[typ]
			if !ok {
				continue
			}
			col, err := lookupColumn(op, t, field)
			if err != nil {
				return "", nil, err
			}
			mapped = true
			expr, a, err := inList(op, qualified(ref, col.name), col, subjects[typ])
			if err != nil {
				return "", nil, err
			}
			if expr != "" {
				parts = append(parts, expr)
				args = append(args, a...)
			}
		}
		if !mapped {
			return "", nil, invalid(op, "collection %s holds none of the subjects' identity types", quote(t.name))
		}
		if len(parts) == 0 {
			return "FALSE", nil, nil // no value can match this table's columns
		}
		return "(" + strings.Join(parts, " OR ") + ")", args, nil
	}
	hop := via[0]
	field, parent, parentField, alias, err := d.hop(ctx, op, t, hop, depth)
	if err != nil {
		return "", nil, err
	}
	inner, args, err := d.subjectExpr(ctx, op, alias, parent, hop.Parent, via[1:], subjects, depth+1)
	if err != nil {
		return "", nil, err
	}
	return qualified(ref, field.name) + " IN (SELECT " + qualified(alias, parentField.name) +
		" FROM " + quote(parent.name) + " AS " + quote(alias) + " WHERE " + inner + ")", args, nil
}

// heldExpr is the predicate "this row is kept by a legal hold": one of its
// own identity fields holds a held value, or its reference along via leads
// to a row that is held. It is "" when no identity type of the holds is
// reachable. NULLs make it NULL, never true.
func (d *Driver) heldExpr(ctx context.Context, op, ref string, t *tableMeta, c datastore.Collection, via []datastore.Hop, held map[string][]string, depth int) (string, []any, error) {
	var parts []string
	var args []any
	for _, typ := range sortedKeys(held) {
		field, ok := c.IdentityFields[typ]
		if !ok || len(held[typ]) == 0 {
			continue
		}
		col, err := lookupColumn(op, t, field)
		if err != nil {
			return "", nil, err
		}
		expr, a, err := inList(op, qualified(ref, col.name), col, held[typ])
		if err != nil {
			return "", nil, err
		}
		if expr != "" {
			parts = append(parts, expr)
			args = append(args, a...)
		}
	}
	if len(via) > 0 {
		hop := via[0]
		field, parent, parentField, alias, err := d.hop(ctx, op, t, hop, depth)
		if err != nil {
			return "", nil, err
		}
		inner, a, err := d.heldExpr(ctx, op, alias, parent, hop.Parent, via[1:], held, depth+1)
		if err != nil {
			return "", nil, err
		}
		if inner != "" {
			parts = append(parts, qualified(ref, field.name)+" IN (SELECT "+qualified(alias, parentField.name)+
				" FROM "+quote(parent.name)+" AS "+quote(alias)+" WHERE "+inner+")")
			args = append(args, a...)
		}
	}
	if len(parts) == 0 {
		return "", nil, nil
	}
	return "(" + strings.Join(parts, " OR ") + ")", args, nil
}

// hop resolves one step of a Via path: the referencing column of t, the
// parent table, its referenced column and the alias the subquery uses.
func (d *Driver) hop(ctx context.Context, op string, t *tableMeta, h datastore.Hop, depth int) (*column, *tableMeta, *column, string, error) {
	field, err := lookupColumn(op, t, h.Field)
	if err != nil {
		return nil, nil, nil, "", err
	}
	parent, err := d.table(ctx, op, tableName(h.Parent))
	if err != nil {
		return nil, nil, nil, "", err
	}
	pf, err := lookupColumn(op, parent, h.ParentField)
	if err != nil {
		return nil, nil, nil, "", err
	}
	return field, parent, pf, "lethe_h" + strconv.Itoa(depth+1), nil
}

// inList is "col IN (?,…)" for the values that can equal a value of col,
// split into lists of inChunk joined with OR; "" when none can.
func inList(op, ref string, col *column, values []string) (string, []any, error) {
	var args []any
	seen := make(map[string]bool, len(values))
	for _, v := range values {
		if seen[v] {
			continue
		}
		seen[v] = true
		a, ok, err := identityArg(op, col, v)
		if err != nil {
			return "", nil, err
		}
		if ok {
			args = append(args, a)
		}
	}
	if len(args) == 0 {
		return "", nil, nil
	}
	var parts []string
	for i := 0; i < len(args); i += inChunk {
		n := min(inChunk, len(args)-i)
		parts = append(parts, ref+" IN ("+placeholders(n)+")")
	}
	if len(parts) == 1 {
		return parts[0], args, nil
	}
	return "(" + strings.Join(parts, " OR ") + ")", args, nil
}

// identityArg converts an identity value to what is bound against col.
// Integer columns get integers: compared with a string, MySQL would convert
// both sides to floating point, where 9007199254740993 equals
// 9007199254740992 and 'abc' equals 0. A value that is not an integer cannot
// equal a value of an integer column (ok false).
func identityArg(op string, col *column, v string) (any, bool, error) {
	switch col.valueKind {
	case kindInt:
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		return n, err == nil, nil
	case kindUint:
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		return n, err == nil, nil
	case kindBytes:
		return []byte(v), true, nil
	case kindFloat, kindDecimal, kindDatetime, kindTimestamp, kindDate:
		return nil, false, invalid(op, "identity column %s is %s; identities must be held in integer or string columns", quote(col.name), col.dataType)
	}
	return v, true, nil
}

// cutoffArg is the value compared with the timestamp column: rows with
// ts < cutoffArg are strictly before the cutoff.
//
// The cutoff is rounded up to the next microsecond (the finest a column
// holds), so ts < rounded ⇔ ts < cutoff for every storable ts. DATETIME
// holds wall-clock time in loc: the cutoff becomes loc's wall clock. With
// the session time zone at UTC, TIMESTAMP compares with the UTC instant. A
// DATE is its midnight in loc, so it is before the cutoff when it is before
// the first midnight at or after the cutoff.
func cutoffArg(ts *column, cutoff time.Time, loc *time.Location) string {
	c := cutoff
	if r := c.Truncate(time.Microsecond); !r.Equal(c) {
		c = r.Add(time.Microsecond)
	}
	switch ts.valueKind {
	case kindTimestamp:
		return c.UTC().Format(sqlDatetime)
	case kindDate:
		w := c.In(loc)
		day := time.Date(w.Year(), w.Month(), w.Day(), 0, 0, 0, 0, time.UTC)
		if w.Hour() != 0 || w.Minute() != 0 || w.Second() != 0 || w.Nanosecond() != 0 {
			day = day.AddDate(0, 0, 1)
		}
		return day.Format(sqlDate)
	default:
		return c.In(loc).Format(sqlDatetime)
	}
}

const (
	sqlDatetime = "2006-01-02 15:04:05.999999"
	sqlDate     = "2006-01-02"
)

// qualified is `table`.`column`.
func qualified(table, col string) string { return quote(table) + "." + quote(col) }

func placeholders(n int) string {
	if n <= 0 {
		return ""
	}
	return strings.Repeat("?,", n-1) + "?"
}

func countValues(m map[string][]string) int {
	n := 0
	for _, v := range m {
		n += len(v)
	}
	return n
}

// cursorTag identifies the table and batching key a cursor was made for.
func cursorTag(t *tableMeta, key []*column) string {
	h := sha256.New()
	h.Write([]byte(t.name))
	for _, k := range key {
		h.Write([]byte{0})
		h.Write([]byte(k.name))
		h.Write([]byte{0, byte(k.valueKind)})
	}
	return hex.EncodeToString(h.Sum(nil)[:6])
}
