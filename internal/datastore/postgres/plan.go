package postgres

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/mask"
)

// args collects bind parameters; add returns the placeholder.
type args struct{ vals []any }

func (a *args) add(v any) string {
	a.vals = append(a.vals, v)
	return "$" + strconv.Itoa(len(a.vals))
}

// qi quotes one identifier.
func qi(name string) string { return pgx.Identifier{name}.Sanitize() }

// ref is alias.column, quoted.
func ref(alias, col string) string { return alias + "." + qi(col) }

// plan is an operation resolved against the live schema: the WHERE condition
// on alias t that selects what the operation touches (without cursor), and
// its parameters.
type plan struct {
	desc    string // for error messages: what and where, never values
	t       *table
	keys    []tableKey // every table the statement reads, for cache invalidation
	pk      []column
	ts      *column // timestamp column when the operation has a cutoff
	cond    string
	a       args
	subject bool
	cutoff  *cutoffArg
	// heldParams shares one bound array per held identity type and column
	// type across the levels of the path.
	heldParams map[string]string
}

// cutoffArg is the cutoff bound for the timestamp column's type.
type cutoffArg struct {
	sqlType string // timestamptz or timestamp
	value   time.Time
}

// plan resolves o. It validates everything it can before any data is read.
func (d *Driver) plan(ctx context.Context, verb string, o datastore.Operation) (*plan, error) {
	return d.planAfter(ctx, verb, o, nil)
}

// planAfter is plan with its parameters numbered after prior ones (the
// plan's args start with a copy of prior), so its condition can be combined
// with another plan's in one statement.
func (d *Driver) planAfter(ctx context.Context, verb string, o datastore.Operation, prior []any) (*plan, error) {
	key, err := keyOf(verb, o.Collection)
	if err != nil {
		return nil, err
	}
	p := &plan{desc: verb + " on " + key.ident(), keys: []tableKey{key}, a: args{vals: slices.Clone(prior)}}
	t, err := d.cached(ctx, key)
	if err != nil {
		return nil, err
	}
	p.t = t
	pkNames, err := t.keyColumns(p.desc, o.Collection)
	if err != nil {
		return nil, err
	}
	for _, n := range pkNames {
		c, _ := t.col(p.desc, n)
		p.pk = append(p.pk, c)
	}

	var conds []string
	if o.Cutoff != nil {
		if o.Collection.TimestampField == "" {
			return nil, invalid(p.desc, "operation has a cutoff but the collection has no timestamp field")
		}
		c, err := t.col(p.desc, o.Collection.TimestampField)
		if err != nil {
			return nil, err
		}
		p.ts = &c
		ca, err := cutoffFor(p.desc, c, *o.Cutoff, o.Collection.TimestampLocation)
		if err != nil {
			return nil, err
		}
		p.cutoff = &ca
		conds = append(conds, fmt.Sprintf("%s < %s::%s", ref("t", c.Name), p.a.add(ca.value), ca.sqlType))
	}

	if len(o.Subjects) > 0 {
		p.subject = true
		cond, err := d.subjectCond(ctx, p, o)
		if err != nil {
			return nil, err
		}
		conds = append(conds, cond)
	}
	if len(conds) == 0 {
		return nil, invalid(p.desc, "operation selects neither by cutoff nor by subject")
	}

	if len(o.Held) > 0 {
		held, err := d.heldExpr(ctx, p, o, "t")
		if err != nil {
			return nil, err
		}
		if held != "" {
			// IS NOT TRUE, not NOT: a NULL identity is not held, and
			// NOT (NULL = ANY(...)) would be NULL and silently keep the row
			// out of the batch forever.
			conds = append(conds, "("+held+") IS NOT TRUE")
		}
	}
	p.cond = strings.Join(conds, "\n  AND ")
	return p, nil
}

// cutoffFor converts the cutoff for the column's type. timestamptz compares
// instants. timestamp and date hold wall-clock time in loc (nil = UTC), so
// the cutoff becomes loc's wall-clock reading at that instant, bound as a
// timestamp (a date compares as its midnight). The cutoff is rounded up to
// the microsecond (the server's resolution), which keeps "strictly before"
// exact for stored values.
func cutoffFor(desc string, c column, cutoff time.Time, loc *time.Location) (cutoffArg, error) {
	if r := cutoff.Nanosecond() % 1000; r != 0 {
		cutoff = cutoff.Add(time.Duration(1000 - r))
	}
	switch c.base {
	case "timestamptz":
		return cutoffArg{sqlType: "timestamptz", value: cutoff.UTC()}, nil
	case "timestamp", "date":
		return cutoffArg{sqlType: "timestamp", value: wallClock(cutoff, loc)}, nil
	}
	return cutoffArg{}, invalid(desc, "timestamp column %q has type %s; want timestamptz, timestamp or date", c.Name, c.base)
}

// wallClock returns the reading of a clock in loc at instant t, as a
// time.Time in UTC with those fields (pgx encodes a timestamp parameter from
// the fields of a time.Time).
func wallClock(t time.Time, loc *time.Location) time.Time {
	if loc == nil {
		loc = time.UTC
	}
	w := t.In(loc)
	return time.Date(w.Year(), w.Month(), w.Day(), w.Hour(), w.Minute(), w.Second(), w.Nanosecond(), time.UTC)
}

// level is one collection on a path: level 0 is the operation's
// collection, level i is path[i-1].Parent.
type level struct {
	coll datastore.Collection
	t    *table
	key  tableKey
}

// levels resolves the collections of one path (level 0 is the operation's).
func (d *Driver) levels(ctx context.Context, p *plan, o datastore.Operation, path []datastore.Hop) ([]level, error) {
	out := []level{{coll: o.Collection, t: p.t, key: p.t.key}}
	for _, h := range path {
		key, err := keyOf(p.desc, h.Parent)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(p.keys, key) {
			p.keys = append(p.keys, key)
		}
		t, err := d.cached(ctx, key)
		if err != nil {
			return nil, err
		}
		out = append(out, level{coll: h.Parent, t: t, key: key})
	}
	return out, nil
}

// hopColumns checks a hop (from level from to level to) against both tables.
func hopColumns(desc string, from, to level, h datastore.Hop) (column, column, error) {
	fc, err := from.t.col(desc, h.Field)
	if err != nil {
		return fc, fc, err
	}
	pf := h.ParentField
	if pf == "" {
		pk, err := to.t.keyColumns(desc, to.coll)
		if err != nil {
			return fc, fc, err
		}
		if len(pk) != 1 {
			return fc, fc, invalid(desc, "hop to %s needs a parent field (no single-column primary key)", to.key.ident())
		}
		pf = pk[0]
	}
	tc, err := to.t.col(desc, pf)
	return fc, tc, err
}

// identityTerms builds "alias.col = ANY($n::text[]::type[])" for each identity
// type of vals the collection holds directly. Values are bound as text and
// cast by the server to the column's type (without modifier, so nothing is
// truncated); values that cannot possibly be of that type are dropped here,
// since they match no row and one malformed identifier must not fail a
// statement that coalesces many subjects.
func identityTerms(desc string, a *args, params map[string]string, alias string, lv level, vals map[string][]string) ([]string, error) {
	types := make([]string, 0, len(vals))
	for typ := range vals {
		types = append(types, typ)
	}
	slices.Sort(types)
	var terms []string
	for _, typ := range types {
		field, ok := lv.coll.IdentityFields[typ]
		if !ok || field == "" || len(vals[typ]) == 0 {
			continue
		}
		c, err := lv.t.col(desc, field)
		if err != nil {
			return nil, err
		}
		kept := make([]string, 0, len(vals[typ]))
		for _, v := range vals[typ] {
			if possibleValue(c.base, v) {
				kept = append(kept, v)
			}
		}
		pk := typ + "\x00" + c.base
		ph, ok := params[pk]
		if !ok {
			ph = a.add(kept)
			params[pk] = ph
		}
		terms = append(terms, fmt.Sprintf("%s = ANY(%s::text[]::%s[])", ref(alias, c.Name), ph, c.castType))
	}
	return terms, nil
}

// pathCond is true when the record at alias al of level 0 reaches one of
// vals' identities along path: nested IN (SELECT ...) subqueries, the
// identities matched at the path's end. With an empty path it is the
// collection's own identity terms. It returns "" when the end holds none of
// vals' types.
func (d *Driver) pathCond(ctx context.Context, p *plan, o datastore.Operation, path []datastore.Hop, vals map[string][]string, params map[string]string, al, prefix string) (string, error) {
	levels, err := d.levels(ctx, p, o, path)
	if err != nil {
		return "", err
	}
	last := len(levels) - 1
	alias := func(i int) string {
		if i == 0 {
			return al
		}
		return prefix + strconv.Itoa(i)
	}
	terms, err := identityTerms(p.desc, &p.a, params, alias(last), levels[last], vals)
	if err != nil {
		return "", err
	}
	if len(terms) == 0 {
		return "", nil
	}
	cond := "(" + strings.Join(terms, " OR ") + ")"
	for i := last - 1; i >= 0; i-- {
		fc, tc, err := hopColumns(p.desc, levels[i], levels[i+1], path[i])
		if err != nil {
			return "", err
		}
		cond = fmt.Sprintf("%s IN (SELECT %s FROM %s AS %s WHERE %s)",
			ref(alias(i), fc.Name), ref(alias(i+1), tc.Name), levels[i+1].key.ident(), alias(i+1), cond)
	}
	return cond, nil
}

// subjectCond selects the subjects' records: directly through the
// collection's identity fields, through every path of o.Paths, and by the
// sealed keys of o.Keys; a record matching any of them is selected.
func (d *Driver) subjectCond(ctx context.Context, p *plan, o datastore.Operation) (string, error) {
	params := map[string]string{}
	hasValues := false
	for _, vs := range o.Subjects {
		if len(vs) > 0 {
			hasValues = true
		}
	}
	if !hasValues {
		return "", invalid(p.desc, "operation selects by subject but has no subject values")
	}
	var terms []string
	direct, err := d.pathCond(ctx, p, o, nil, o.Subjects, params, "t", "")
	if err != nil {
		return "", err
	}
	if direct != "" {
		terms = append(terms, direct)
	}
	for k, path := range o.Paths {
		cond, err := d.pathCond(ctx, p, o, path, o.Subjects, params, "t", "s"+strconv.Itoa(k)+"_")
		if err != nil {
			return "", err
		}
		if cond == "" {
			return "", invalid(p.desc, "the end of path %d holds none of the operation's identity types", k+1)
		}
		terms = append(terms, cond)
	}
	if len(terms) == 0 {
		return "", invalid(p.desc, "%s holds none of the operation's identity types", p.t.key.ident())
	}
	if len(o.Keys) > 0 {
		keys, err := keysCond(p, "t", o.Keys)
		if err != nil {
			return "", err
		}
		terms = append(terms, keys)
	}
	if len(terms) == 1 {
		return terms[0], nil
	}
	return "(" + strings.Join(terms, "\n   OR ") + ")", nil
}

// keysCond is true for the records whose primary key is one of keys (text
// tuples in key order), each column cast to its type by the server.
func keysCond(p *plan, al string, keys [][]string) (string, error) {
	cols := make([][]string, len(p.pk))
	for _, k := range keys {
		if len(k) != len(p.pk) {
			return "", invalid(p.desc, "a sealed key has %d columns, the primary key %d", len(k), len(p.pk))
		}
		for i := range k {
			cols[i] = append(cols[i], k[i])
		}
	}
	if len(p.pk) == 1 {
		c := p.pk[0]
		return fmt.Sprintf("%s = ANY(%s::text[]::%s[])", ref(al, c.Name), p.a.add(cols[0]), c.castType), nil
	}
	var lhs, sel, arrays []string
	for i, c := range p.pk {
		lhs = append(lhs, ref(al, c.Name))
		sel = append(sel, fmt.Sprintf("k.c%d::%s", i, c.castType))
		arrays = append(arrays, p.a.add(cols[i])+"::text[]")
	}
	names := make([]string, len(p.pk))
	for i := range names {
		names[i] = "c" + strconv.Itoa(i)
	}
	return fmt.Sprintf("(%s) IN (SELECT %s FROM unnest(%s) AS k(%s))",
		strings.Join(lhs, ", "), strings.Join(sel, ", "), strings.Join(arrays, ", "), strings.Join(names, ", ")), nil
}

// heldExpr is true when the record at alias al is held: one of its own
// identity fields holds a held value, or a path of o.HeldPaths leads to a
// record that does. It returns "" when no held identity type occurs. A
// comparison may be NULL; the caller wraps the whole in IS NOT TRUE.
func (d *Driver) heldExpr(ctx context.Context, p *plan, o datastore.Operation, al string) (string, error) {
	if p.heldParams == nil {
		p.heldParams = map[string]string{}
	}
	var terms []string
	direct, err := d.pathCond(ctx, p, o, nil, o.Held, p.heldParams, al, "")
	if err != nil {
		return "", err
	}
	if direct != "" {
		terms = append(terms, direct)
	}
	for k, path := range o.HeldPaths {
		cond, err := d.pathCond(ctx, p, o, path, o.Held, p.heldParams, al, "h"+strconv.Itoa(k)+"_")
		if err != nil {
			return "", err
		}
		if cond != "" {
			terms = append(terms, cond)
		}
	}
	return strings.Join(terms, " OR "), nil
}

// possibleValue is false only for values that certainly cannot be read as
// the type (so they match nothing and are not sent). It is deliberately
// lenient: anything the server might accept is kept.
func possibleValue(base, v string) bool {
	switch base {
	case "int2", "int4", "int8":
		s := strings.TrimSpace(v)
		if s == "" {
			return false
		}
		for _, r := range s {
			if !strings.ContainsRune("0123456789+-_xXoObBaAbBcCdDeEfF", r) {
				return false
			}
		}
		bits := map[string]int{"int2": 16, "int4": 32, "int8": 64}[base]
		digits := strings.TrimLeft(s, "+-")
		if digits != "" && strings.Trim(digits, "0123456789") == "" {
			_, err := strconv.ParseInt(strings.TrimPrefix(s, "+"), 10, bits)
			return err == nil
		}
		return true
	case "uuid":
		s := strings.TrimSpace(v)
		n := 0
		for _, r := range s {
			switch {
			case r >= '0' && r <= '9', r >= 'a' && r <= 'f', r >= 'A' && r <= 'F':
				n++
			case r == '-' || r == '{' || r == '}':
			default:
				return false
			}
		}
		return n == 32
	}
	return true
}

// maskColumn maps a described column to what mask strategies need.
func maskColumn(c column) mask.Column {
	return mask.Column{Type: c.family, MaxLength: c.MaxLength, Nullable: c.Nullable}
}
