// Package fake is an in-memory datastore.Driver for tests that run without
// a datastore server: records live in memory, operations select them as the
// contract in internal/datastore/driver.go says, and failures are
// programmed per call (Fail, Program).
//
// A collection is a set of records, each with a key (its one-column primary
// key, also readable as the field KeyField), a time (what a cutoff
// compares) and text fields. Execute walks records in key order from the
// cursor, which is the last key of the previous batch. Identity fields,
// subjects, sealed keys, held identities and reference paths (Paths,
// HeldPaths: a hop's Field holds the value of the parent's ParentField) are
// matched exactly. Anonymization applies the operation's mask strategies to
// text. Driver implements datastore.Sealer and datastore.Referrers (through
// declared References); Plain hides both, as a Redis or S3 store would.
package fake

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/mask"
)

// KeyField is the field name under which a record's key can be read (a
// reference to a collection refers to it).
const KeyField = "id"

// Errors classed as the real drivers class them, for Fail.
var (
	// ErrLockTimeout: a lock was not granted within the store's lock timeout.
	ErrLockTimeout = fmt.Errorf("fake: lock timeout: %w", datastore.ErrLockTimeout)
	// ErrUnavailable: the store cannot be reached.
	ErrUnavailable = fmt.Errorf("fake: connection refused: %w", datastore.ErrUnavailable)
	// ErrAuthentication: the store refused the credentials.
	ErrAuthentication = fmt.Errorf("fake: password authentication failed: %w", datastore.ErrAuthentication)
	// ErrUndefinedColumn: a field does not exist (an invalid operation).
	ErrUndefinedColumn = fmt.Errorf("fake: undefined column: %w", datastore.ErrNotFound)
	// ErrConstraint: the store refused the change (an invalid operation).
	ErrConstraint = fmt.Errorf("fake: integrity constraint violation: %w", datastore.ErrInvalid)
)

// Record is one record of a collection.
type Record struct {
	Key    string
	Time   time.Time
	Fields map[string]string
}

// get reads a field; KeyField reads the key unless a field of that name is set.
func (r Record) get(field string) (string, bool) {
	if v, ok := r.Fields[field]; ok {
		return v, true
	}
	if field == KeyField {
		return r.Key, true
	}
	return "", false
}

// Reference is a foreign key: From's Field holds keys of To. Blockers
// reports deleted records of To that records of From still refer to.
type Reference struct {
	Name  string
	From  string
	Field string
	To    string
	// OnDelete is reported as the key's action (default NO ACTION).
	OnDelete string
}

// Fault programs calls of a method (Probe, Describe, Count, Total, Execute,
// Keys, Blockers).
type Fault struct {
	Method string
	// Call is the 1-based call of Method it applies to; 0 applies to every
	// call.
	Call int
	// Before, if set, runs before the call, without the driver's lock held
	// (it may call Insert or Remove: data that changes between calls).
	Before func()
	// Err, if set, is what the call returns; the call does nothing else.
	Err error
}

// Driver is the in-memory store. It is safe for concurrent use.
type Driver struct {
	mu          sync.Mutex
	collections map[string]map[string]Record
	references  []Reference
	faults      []Fault
	calls       map[string]int
	closed      bool
}

// New returns an empty store.
func New() *Driver {
	return &Driver{collections: map[string]map[string]Record{}, calls: map[string]int{}}
}

// Insert adds records to a collection (creating it), replacing records of
// the same key.
func (d *Driver) Insert(collection string, records ...Record) *Driver {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.collections[collection]
	if c == nil {
		c = map[string]Record{}
		d.collections[collection] = c
	}
	for _, r := range records {
		r.Fields = maps.Clone(r.Fields)
		c[r.Key] = r
	}
	return d
}

// Remove deletes records by key.
func (d *Driver) Remove(collection string, keys ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, k := range keys {
		delete(d.collections[collection], k)
	}
}

// Reference declares a foreign key.
func (d *Driver) Reference(ref Reference) *Driver {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.references = append(d.references, ref)
	return d
}

// Fail makes the call-th call of method (0: every call) return err.
func (d *Driver) Fail(method string, call int, err error) *Driver {
	return d.Program(Fault{Method: method, Call: call, Err: err})
}

// Program adds a fault.
func (d *Driver) Program(f Fault) *Driver {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.faults = append(d.faults, f)
	return d
}

// Calls is how many times method was called.
func (d *Driver) Calls(method string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.calls[method]
}

// Records returns a copy of a collection's records in key order.
func (d *Driver) Records(collection string) []Record {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.sorted(collection)
}

// Record returns one record.
func (d *Driver) Record(collection, key string) (Record, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	r, ok := d.collections[collection][key]
	r.Fields = maps.Clone(r.Fields)
	return r, ok
}

// Closed reports whether Close was called.
func (d *Driver) Closed() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.closed
}

// Plain is the store without datastore.Sealer and datastore.Referrers.
func (d *Driver) Plain() datastore.Driver { return plain{d} }

type plain struct{ d *Driver }

func (p plain) Probe(ctx context.Context) (datastore.ServerInfo, error) { return p.d.Probe(ctx) }
func (p plain) Describe(ctx context.Context, c datastore.Collection) (datastore.CollectionInfo, error) {
	return p.d.Describe(ctx, c)
}
func (p plain) Count(ctx context.Context, op datastore.Operation) (int64, error) {
	return p.d.Count(ctx, op)
}
func (p plain) Total(ctx context.Context, c datastore.Collection) (int64, error) {
	return p.d.Total(ctx, c)
}
func (p plain) Execute(ctx context.Context, op datastore.Operation, cursor string) (datastore.Batch, error) {
	return p.d.Execute(ctx, op, cursor)
}
func (p plain) Close() error { return p.d.Close() }

// call counts a call of method, runs its Before hooks and returns its
// programmed error (or the context's).
func (d *Driver) call(ctx context.Context, method string) error {
	d.mu.Lock()
	d.calls[method]++
	n := d.calls[method]
	var before []func()
	var err error
	for _, f := range d.faults {
		if f.Method != method || (f.Call != 0 && f.Call != n) {
			continue
		}
		if f.Before != nil {
			before = append(before, f.Before)
		}
		if f.Err != nil && err == nil {
			err = f.Err
		}
	}
	d.mu.Unlock()
	for _, b := range before {
		b()
	}
	if err == nil {
		err = ctx.Err()
	}
	return err
}

// Probe reports the version "fake".
func (d *Driver) Probe(ctx context.Context) (datastore.ServerInfo, error) {
	if err := d.call(ctx, "Probe"); err != nil {
		return datastore.ServerInfo{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return datastore.ServerInfo{Version: "fake"}, nil
}

// Describe reports a collection's key, fields and size.
func (d *Driver) Describe(ctx context.Context, c datastore.Collection) (datastore.CollectionInfo, error) {
	if err := d.call(ctx, "Describe"); err != nil {
		return datastore.CollectionInfo{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	recs, ok := d.collections[c.Name]
	if !ok {
		return datastore.CollectionInfo{}, notFound(c.Name)
	}
	info := datastore.CollectionInfo{
		Columns:       map[string]datastore.Column{KeyField: {Name: KeyField, Type: "text", Unique: true}},
		PrimaryKey:    []string{KeyField},
		UniqueKeys:    [][]string{{KeyField}},
		EstimatedRows: int64(len(recs)),
	}
	for _, r := range recs {
		for f := range r.Fields {
			if _, ok := info.Columns[f]; !ok {
				info.Columns[f] = datastore.Column{Name: f, Type: "text", Nullable: true, Mask: mask.Column{Type: mask.Text, Nullable: true}}
			}
		}
	}
	return info, nil
}

// Count counts the records op selects.
func (d *Driver) Count(ctx context.Context, op datastore.Operation) (int64, error) {
	if err := d.call(ctx, "Count"); err != nil {
		return 0, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	sel, err := d.selectRecords(op, "", -1)
	return int64(len(sel)), err
}

// Total counts a collection's records.
func (d *Driver) Total(ctx context.Context, c datastore.Collection) (int64, error) {
	if err := d.call(ctx, "Total"); err != nil {
		return 0, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	recs, ok := d.collections[c.Name]
	if !ok {
		return 0, notFound(c.Name)
	}
	return int64(len(recs)), nil
}

// Execute deletes or anonymizes at most op.BatchSize selected records with
// keys after cursor, all or none.
func (d *Driver) Execute(ctx context.Context, op datastore.Operation, cursor string) (datastore.Batch, error) {
	if err := d.call(ctx, "Execute"); err != nil {
		return datastore.Batch{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	size := op.BatchSize
	if size <= 0 {
		size = 1000
	}
	sel, err := d.selectRecords(op, cursor, size+1)
	if err != nil {
		return datastore.Batch{}, err
	}
	done := len(sel) <= size
	sel = sel[:min(len(sel), size)]
	changed := make([]Record, 0, len(sel))
	for _, r := range sel {
		if !op.Delete {
			var err error
			if r, err = anonymize(r, op.Fields); err != nil {
				return datastore.Batch{}, err
			}
		}
		changed = append(changed, r)
	}
	recs := d.collections[op.Collection.Name]
	for _, r := range changed {
		if op.Delete {
			delete(recs, r.Key)
		} else {
			recs[r.Key] = r
		}
	}
	b := datastore.Batch{Affected: int64(len(changed)), Cursor: cursor, Done: done}
	if len(changed) > 0 {
		b.Cursor = changed[len(changed)-1].Key
	}
	return b, nil
}

// Close marks the driver closed.
func (d *Driver) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	return nil
}

// Keys returns the keys of the records op selects, at most limit.
func (d *Driver) Keys(ctx context.Context, op datastore.Operation, limit int) ([][]string, error) {
	if err := d.call(ctx, "Keys"); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	sel, err := d.selectRecords(op, "", -1)
	if err != nil {
		return nil, err
	}
	if len(sel) > limit {
		return nil, fmt.Errorf("fake: %d keys selected, more than %d: %w", len(sel), limit, datastore.ErrInvalid)
	}
	keys := make([][]string, len(sel))
	for i, r := range sel {
		keys[i] = []string{r.Key}
	}
	return keys, nil
}

// Blockers reports, for each Delete operation and each declared Reference
// to its collection, the referring records that no Delete operation of ops
// removes.
func (d *Driver) Blockers(ctx context.Context, ops []datastore.Operation) ([]datastore.Blocker, error) {
	if err := d.call(ctx, "Blockers"); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	deleted := map[string]map[string]bool{} // collection → keys some Delete op removes
	for _, op := range ops {
		if !op.Delete {
			continue
		}
		sel, err := d.selectRecords(op, "", -1)
		if err != nil {
			return nil, err
		}
		if deleted[op.Collection.Name] == nil {
			deleted[op.Collection.Name] = map[string]bool{}
		}
		for _, r := range sel {
			deleted[op.Collection.Name][r.Key] = true
		}
	}
	var out []datastore.Blocker
	for _, op := range ops {
		if !op.Delete {
			continue
		}
		for _, ref := range d.references {
			if ref.To != op.Collection.Name {
				continue
			}
			var rows int64
			for _, r := range d.sorted(ref.From) {
				if v, ok := r.get(ref.Field); ok && deleted[ref.To][v] && !deleted[ref.From][r.Key] {
					rows++
				}
			}
			if rows > 0 {
				out = append(out, datastore.Blocker{Collection: op.Collection.Name, Constraint: ref.Name, Table: ref.From,
					Columns: []string{ref.Field}, OnDelete: cmp.Or(ref.OnDelete, "NO ACTION"), Rows: rows})
			}
		}
	}
	return out, nil
}

// selectRecords returns, in key order, at most limit (negative: all)
// records of op's collection after cursor that op selects. The lock is held.
func (d *Driver) selectRecords(op datastore.Operation, cursor string, limit int) ([]Record, error) {
	if _, ok := d.collections[op.Collection.Name]; !ok {
		return nil, notFound(op.Collection.Name)
	}
	var out []Record
	for _, r := range d.sorted(op.Collection.Name) {
		if limit >= 0 && len(out) >= limit {
			break
		}
		if r.Key > cursor && d.selects(op, r) {
			out = append(out, r)
		}
	}
	return out, nil
}

func (d *Driver) selects(op datastore.Operation, r Record) bool {
	if op.Cutoff != nil && !r.Time.Before(*op.Cutoff) {
		return false
	}
	if op.Subjects != nil && !d.belongs(op.Collection, op.Paths, op.Subjects, r) &&
		!slices.ContainsFunc(op.Keys, func(k []string) bool { return len(k) == 1 && k[0] == r.Key }) {
		return false
	}
	return len(op.Held) == 0 || !d.belongs(op.Collection, op.HeldPaths, op.Held, r)
}

// belongs reports whether r holds one of ids in its collection's identity
// fields or at the end of one of paths.
func (d *Driver) belongs(c datastore.Collection, paths [][]datastore.Hop, ids map[string][]string, r Record) bool {
	if holds(c, ids, r) {
		return true
	}
	return slices.ContainsFunc(paths, func(p []datastore.Hop) bool { return d.reaches(p, ids, r) })
}

func holds(c datastore.Collection, ids map[string][]string, r Record) bool {
	for typ, field := range c.IdentityFields {
		if v, ok := r.get(field); ok && slices.Contains(ids[typ], v) {
			return true
		}
	}
	return false
}

func (d *Driver) reaches(path []datastore.Hop, ids map[string][]string, r Record) bool {
	if len(path) == 0 {
		return false
	}
	h := path[0]
	v, ok := r.get(h.Field)
	if !ok {
		return false
	}
	for _, p := range d.collections[h.Parent.Name] {
		if pv, ok := p.get(h.ParentField); !ok || pv != v {
			continue
		}
		if holds(h.Parent, ids, p) || d.reaches(path[1:], ids, p) {
			return true
		}
	}
	return false
}

// sorted returns a collection's records in key order. The lock is held.
func (d *Driver) sorted(collection string) []Record {
	recs := slices.Collect(maps.Values(d.collections[collection]))
	slices.SortFunc(recs, func(a, b Record) int { return cmp.Compare(a.Key, b.Key) })
	for i := range recs {
		recs[i].Fields = maps.Clone(recs[i].Fields)
	}
	return recs
}

// anonymize applies the masks to a copy of r. A record without a masked
// field fails like an undefined column; a mask that cannot apply is an
// invalid operation.
func anonymize(r Record, fields []datastore.FieldMask) (Record, error) {
	if r.Fields == nil {
		r.Fields = map[string]string{}
	}
	for _, f := range fields {
		v, ok := r.Fields[f.Field]
		if !ok {
			return r, fmt.Errorf("fake: field %q: %w", f.Field, ErrUndefinedColumn)
		}
		out, err := f.Strategy.Apply(v, mask.Column{Type: mask.Text, Nullable: true})
		if err != nil {
			return r, fmt.Errorf("fake: field %q: %w: %w", f.Field, datastore.ErrInvalid, err)
		}
		s, _ := out.(string)
		r.Fields[f.Field] = s
	}
	return r, nil
}

func notFound(collection string) error {
	return fmt.Errorf("fake: collection %q does not exist: %w", collection, datastore.ErrNotFound)
}

var (
	_ datastore.Driver    = (*Driver)(nil)
	_ datastore.Sealer    = (*Driver)(nil)
	_ datastore.Referrers = (*Driver)(nil)
)
