package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/mask"
)

// cacheTTL bounds how long a described table is trusted. Execute also drops
// the entry as soon as the server reports an undefined table or column.
const cacheTTL = 10 * time.Minute

type tableKey struct{ schema, name string }

func (k tableKey) String() string { return k.schema + "." + k.name }

// ident is the quoted, schema-qualified name, safe to splice into SQL.
func (k tableKey) ident() string { return pgx.Identifier{k.schema, k.name}.Sanitize() }

// column is a described column.
type column struct {
	datastore.Column
	// castType is the column's type as a schema-qualified name without
	// type modifier (pg_catalog.varchar, not character varying(20)), quoted
	// by the server with quote_ident, used in casts such as
	// $1::text::<castType>. It never comes from user input. Without the
	// modifier a cast never truncates: 'bob@example.com'::varchar(3) would
	// silently become 'bob' and could match another row.
	castType string
	// base is the base type name (domains resolved one level).
	base string
	// family decides how values are read, compared and anonymized.
	family mask.ColumnType
}

// table is what the driver knows of a live table.
type table struct {
	key      tableKey
	oid      uint32
	columns  map[string]column
	colOrder []string
	pk       []string
	// unique holds the primary key and every unique, valid, non-partial,
	// plain index whose columns are all NOT NULL, primary key first, then
	// narrowest first; pk is the first of them.
	unique [][]string
	// uniqueKeys are the column lists of the table's plain unique indexes
	// (not partial, no expression), the primary key first.
	uniqueKeys [][]string
	fks        []datastore.ForeignKey
	// rangePartitioned: relkind p with RANGE strategy.
	rangePartitioned bool
	// partKey is the single plain column the table is range-partitioned on,
	// "" when partitioned differently (expression, several columns) or not at all.
	partKey string
	// leading holds the columns that lead a valid, non-partial btree index.
	leading  map[string]bool
	loadedAt time.Time
}

func keyOf(op string, c datastore.Collection) (tableKey, error) {
	k := tableKey{schema: c.Schema, name: c.Table}
	if k.schema == "" {
		k.schema = "public"
	}
	if k.name == "" {
		k.name = c.Name
	}
	if k.name == "" {
		return k, invalid(op, "collection has no table name")
	}
	if strings.ContainsRune(k.schema+k.name, 0) {
		return k, invalid(op, "table name contains a NUL byte")
	}
	return k, nil
}

// Describe checks that the table exists and reports its columns, primary key
// (the collection's declared one when set, else the table's primary key, else
// its narrowest unique index on NOT NULL columns, else none), foreign keys, whether it is
// range-partitioned and the planner's row estimate summed over partitions.
// It always reads the live catalog and refreshes the driver's cache.
func (d *Driver) Describe(ctx context.Context, c datastore.Collection) (_ datastore.CollectionInfo, err error) {
	defer d.lockWait(&err)
	key, err := keyOf("describe", c)
	if err != nil {
		return datastore.CollectionInfo{}, err
	}
	op := "describe " + key.ident()
	t, err := d.load(ctx, key)
	if err != nil {
		return datastore.CollectionInfo{}, err
	}
	pk, err := t.reportedKey(op, c)
	if err != nil {
		return datastore.CollectionInfo{}, err
	}
	var est int64
	err = d.pool.QueryRow(ctx, `
SELECT coalesce(sum(greatest(c.reltuples, 0)), 0)::bigint
FROM pg_catalog.pg_class c
WHERE (c.oid = $1 AND c.relkind <> 'p')
   OR c.oid IN (SELECT relid FROM pg_catalog.pg_partition_tree($1::oid::regclass) WHERE isleaf)`, t.oid).Scan(&est)
	if err != nil {
		return datastore.CollectionInfo{}, classify(op, err)
	}
	info := datastore.CollectionInfo{
		Columns:       make(map[string]datastore.Column, len(t.columns)),
		PrimaryKey:    pk,
		ForeignKeys:   slices.Clone(t.fks),
		UniqueKeys:    slices.Clone(t.uniqueKeys),
		Partitioned:   t.rangePartitioned,
		EstimatedRows: est,
	}
	for n, col := range t.columns {
		c := col.Column
		c.Mask = maskColumn(col)
		info.Columns[n] = c
	}
	return info, nil
}

// keyColumns returns the collection's declared primary key when set (checked
// against the table), else the discovered one.
func (t *table) keyColumns(op string, c datastore.Collection) ([]string, error) {
	if len(c.PrimaryKey) > 0 {
		for _, k := range c.PrimaryKey {
			if _, ok := t.columns[k]; !ok {
				return nil, notFound(op, "primary key column %q does not exist", k)
			}
		}
		if !datastore.CoversUniqueKey(c.PrimaryKey, t.unique, false) {
			// Keyset batches by a key that is not unique skip or repeat rows.
			return nil, invalid(op, "the declared primary key is not unique in the table (no primary key or unique NOT NULL index is made of its columns)")
		}
		return slices.Clone(c.PrimaryKey), nil
	}
	if len(t.pk) == 0 {
		return nil, invalid(op, "table has no primary key or NOT NULL unique index: declare primaryKey on the collection")
	}
	return slices.Clone(t.pk), nil
}

// reportedKey is keyColumns for Describe: a table without any key is
// reported with an empty PrimaryKey rather than refused (Execute refuses it).
func (t *table) reportedKey(op string, c datastore.Collection) ([]string, error) {
	if len(c.PrimaryKey) == 0 && len(t.pk) == 0 {
		return nil, nil
	}
	return t.keyColumns(op, c)
}

// cached returns the described table, loading it when absent or stale.
func (d *Driver) cached(ctx context.Context, key tableKey) (*table, error) {
	d.mu.RLock()
	t := d.cache[key]
	d.mu.RUnlock()
	if t != nil && time.Since(t.loadedAt) < cacheTTL {
		return t, nil
	}
	return d.load(ctx, key)
}

// forget drops a cache entry (after the server said the table or a column
// does not exist, or after partitions were dropped).
func (d *Driver) forget(key tableKey) {
	d.mu.Lock()
	delete(d.cache, key)
	d.mu.Unlock()
}

// forgetOnNotFound drops the cache entries of keys when err says a table or
// column is missing: the schema changed under the cache.
func (d *Driver) forgetOnNotFound(err error, keys ...tableKey) {
	if errors.Is(err, datastore.ErrNotFound) {
		for _, k := range keys {
			d.forget(k)
		}
	}
}

// load reads a table's description from the catalog. Names are bound as
// parameters here, so a hostile name can only fail to match (ErrNotFound).
func (d *Driver) load(ctx context.Context, key tableKey) (*table, error) {
	op := "describe " + key.ident()
	t := &table{key: key, columns: map[string]column{}, leading: map[string]bool{}}
	var relkind string
	err := d.pool.QueryRow(ctx, `
SELECT c.oid, c.relkind::text
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = $2`, key.schema, key.name).Scan(&t.oid, &relkind)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound(op, "table does not exist")
	}
	if err != nil {
		return nil, classify(op, err)
	}
	if relkind != "r" && relkind != "p" {
		return nil, invalid(op, "relation is not a table (relkind %s)", relkind)
	}

	b := &pgx.Batch{}
	b.Queue(`
SELECT a.attname, quote_ident(tn.nspname) || '.' || quote_ident(t.typname),
       CASE WHEN bt.typcategory = 'A' THEN coalesce(et.typname, bt.typname) || '[]' ELSE bt.typname END,
       CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END,
       NOT a.attnotnull
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
JOIN pg_catalog.pg_namespace tn ON tn.oid = t.typnamespace
JOIN pg_catalog.pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
LEFT JOIN pg_catalog.pg_type et ON et.oid = bt.typelem AND bt.typcategory = 'A'
WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum`, t.oid)
	// The unique keys: the primary key first, then the unique, non-partial,
	// plain indexes whose columns are all NOT NULL, narrowest first.
	b.Queue(`
SELECT ARRAY(SELECT a.attname FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
             ORDER BY k.ord)
FROM pg_catalog.pg_index i
WHERE i.indrelid = $1 AND i.indisunique AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL
  AND NOT EXISTS (SELECT 1 FROM unnest(i.indkey::int2[]) AS k(attnum)
                  JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                  WHERE NOT a.attnotnull)
ORDER BY i.indisprimary DESC, i.indnatts, i.indexrelid`, t.oid)
	b.Queue(`
SELECT con.conname, rn.nspname, rc.relname,
       ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum ORDER BY k.ord),
       ARRAY(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY AS k(attnum, ord)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum ORDER BY k.ord)
FROM pg_catalog.pg_constraint con
JOIN pg_catalog.pg_class rc ON rc.oid = con.confrelid
JOIN pg_catalog.pg_namespace rn ON rn.oid = rc.relnamespace
WHERE con.conrelid = $1 AND con.contype = 'f' AND con.conparentid = 0
ORDER BY con.conname`, t.oid)
	b.Queue(`
SELECT pt.partstrat::text, pt.partnatts,
       coalesce((SELECT a.attname FROM pg_catalog.pg_attribute a
                 WHERE a.attrelid = pt.partrelid AND a.attnum = pt.partattrs[0]), '')
FROM pg_catalog.pg_partitioned_table pt WHERE pt.partrelid = $1`, t.oid)
	b.Queue(`
SELECT DISTINCT a.attname
FROM pg_catalog.pg_index i
JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
JOIN pg_catalog.pg_am am ON am.oid = ic.relam
JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
WHERE i.indrelid = $1 AND am.amname = 'btree' AND i.indpred IS NULL AND i.indisvalid AND i.indkey[0] <> 0`, t.oid)
	// Every unique index: its plain columns, and whether it is a plain key
	// (not partial, no expression).
	b.Queue(`
SELECT ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
             ORDER BY k.ord),
       i.indpred IS NULL AND i.indexprs IS NULL AND i.indisvalid
FROM pg_catalog.pg_index i
WHERE i.indrelid = $1 AND i.indisunique
ORDER BY i.indisprimary DESC, i.indexrelid`, t.oid)

	br := d.pool.SendBatch(ctx, b)
	defer br.Close()

	rows, _ := br.Query()
	var name, castType, typName string
	var typmod int32
	var nullable bool
	_, err = pgx.ForEachRow(rows, []any{&name, &castType, &typName, &typmod, &nullable}, func() error {
		col := column{
			Column:   datastore.Column{Name: name, Type: strings.ToLower(typName), Nullable: nullable},
			castType: castType,
			base:     typName,
			family:   familyOf(typName),
		}
		if (typName == "varchar" || typName == "bpchar") && typmod > 4 {
			col.MaxLength = int(typmod - 4)
		}
		t.columns[name] = col
		t.colOrder = append(t.colOrder, name)
		return nil
	})
	if err != nil {
		return nil, classify(op, err)
	}

	rows, _ = br.Query()
	var keyCols []string
	_, err = pgx.ForEachRow(rows, []any{&keyCols}, func() error {
		t.unique = append(t.unique, keyCols)
		keyCols = nil
		return nil
	})
	if err != nil {
		return nil, classify(op, err)
	}
	if len(t.unique) > 0 {
		t.pk = t.unique[0]
	}

	rows, _ = br.Query()
	var fk datastore.ForeignKey
	_, err = pgx.ForEachRow(rows, []any{&fk.Name, &fk.RefSchema, &fk.RefTable, &fk.Columns, &fk.RefColumns}, func() error {
		t.fks = append(t.fks, fk)
		fk = datastore.ForeignKey{}
		return nil
	})
	if err != nil {
		return nil, classify(op, err)
	}

	var strategy, partKey string
	var natts int16
	switch err := br.QueryRow().Scan(&strategy, &natts, &partKey); {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return nil, classify(op, err)
	default:
		t.rangePartitioned = strategy == "r"
		if t.rangePartitioned && natts == 1 {
			t.partKey = partKey
		}
	}

	rows, _ = br.Query()
	_, err = pgx.ForEachRow(rows, []any{&name}, func() error {
		t.leading[name] = true
		return nil
	})
	if err != nil {
		return nil, classify(op, err)
	}
	rows, _ = br.Query()
	var cols []string
	var plain bool
	_, err = pgx.ForEachRow(rows, []any{&cols, &plain}, func() error {
		for _, c := range cols {
			if col, ok := t.columns[c]; ok {
				col.Unique = true
				t.columns[c] = col
			}
		}
		if plain && len(cols) > 0 {
			t.uniqueKeys = append(t.uniqueKeys, slices.Clone(cols))
		}
		return nil
	})
	if err != nil {
		return nil, classify(op, err)
	}
	if err := br.Close(); err != nil {
		return nil, classify(op, err)
	}

	t.loadedAt = time.Now()
	d.mu.Lock()
	d.cache[key] = t
	d.mu.Unlock()
	return t, nil
}

// familyOf maps a base type name to the family anonymization works with.
func familyOf(typName string) mask.ColumnType {
	switch typName {
	case "text", "varchar", "bpchar", "citext", "name":
		return mask.Text
	case "bytea":
		return mask.Bytes
	case "timestamptz", "timestamp":
		return mask.Timestamp
	case "date":
		return mask.Date
	case "inet", "cidr":
		return mask.IP
	}
	return mask.Other
}

// col returns a described column or ErrNotFound naming it.
func (t *table) col(op, name string) (column, error) {
	c, ok := t.columns[name]
	if !ok {
		return c, notFound(op, "column %q does not exist in %s", name, t.key.ident())
	}
	return c, nil
}

func (t *table) String() string { return fmt.Sprintf("table %s", t.key.ident()) }
