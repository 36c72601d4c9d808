package mysql

import (
	"context"
	"database/sql"
	"sort"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/mask"
)

// column is one column as the driver needs it.
type column struct {
	name      string // as the server spells it
	dataType  string // DATA_TYPE, lowercased
	unsigned  bool
	maxChars  int // character limit for text, byte limit for binary; 0 unlimited/not applicable
	nullable  bool
	unique    bool // part of a unique index
	maskType  mask.ColumnType
	valueKind valueKind
}

// valueKind is how the driver reads, binds and encodes a column's values.
type valueKind int

const (
	kindText valueKind = iota
	kindBytes
	kindInt
	kindUint
	kindDecimal
	kindFloat
	kindDatetime // wall clock (DATETIME)
	kindTimestamp
	kindDate
	kindOther
)

// tableMeta is what the driver knows of a live table.
type tableMeta struct {
	name          string // as the server spells it
	tableType     string
	columns       map[string]*column // by lowercased name (MySQL column names are case-insensitive)
	order         []string           // column names in ordinal order
	primaryKey    []string
	keyIndex      string     // index backing the key used for batching ("PRIMARY")
	uniqueKeys    [][]string // unique indexes whose columns are all NOT NULL, PRIMARY first
	plainUnique   [][]string // every unique index on plain columns, PRIMARY first
	uniqueIndex   []string   // their names, same order
	foreignKeys   []datastore.ForeignKey
	partitions    []partition
	estimatedRows int64
}

// partition is one partition of a partitioned table.
type partition struct {
	name        string
	method      string // RANGE, RANGE COLUMNS, LIST, HASH, KEY…
	expression  string // as the server normalized it: to_days(`created_at`)
	description string // RANGE bound: 739251, '2024-01-01' or MAXVALUE
}

// col finds a column by name, case-insensitively as MySQL does.
func (t *tableMeta) col(name string) (*column, bool) {
	c, ok := t.columns[strings.ToLower(name)]
	return c, ok
}

// Describe checks that the collection's table exists and reports its columns,
// primary key, foreign keys, partitioning and estimated row count. It also
// checks that the fields the collection names (timestamp, identities,
// primary key) exist.
func (d *Driver) Describe(ctx context.Context, c datastore.Collection) (_ datastore.CollectionInfo, err error) {
	defer d.lockWait(&err)
	op := "describe " + quote(tableName(c))
	t, err := d.loadTable(ctx, op, tableName(c))
	if err != nil {
		return datastore.CollectionInfo{}, err
	}
	key, _, err := d.batchKey(op, t, c)
	if err != nil {
		return datastore.CollectionInfo{}, err
	}
	if c.TimestampField != "" {
		if _, err := timestampColumn(op, t, c.TimestampField); err != nil {
			return datastore.CollectionInfo{}, err
		}
	}
	for _, typ := range sortedKeys(c.IdentityFields) {
		if _, err := lookupColumn(op, t, c.IdentityFields[typ]); err != nil {
			return datastore.CollectionInfo{}, err
		}
	}
	info := datastore.CollectionInfo{
		Columns:       make(map[string]datastore.Column, len(t.columns)),
		PrimaryKey:    key,
		ForeignKeys:   t.foreignKeys,
		UniqueKeys:    t.plainUnique,
		Partitioned:   len(t.partitions) > 0,
		EstimatedRows: t.estimatedRows,
	}
	for _, name := range t.order {
		col := t.columns[strings.ToLower(name)]
		mc := mask.Column{Type: col.maskType, MaxLength: col.maxChars, Nullable: col.nullable}
		if col.maskType == mask.Timestamp || col.maskType == mask.Date {
			mc.MaxLength = 0
		}
		info.Columns[col.name] = datastore.Column{Name: col.name, Type: col.dataType, MaxLength: col.maxChars, Nullable: col.nullable, Unique: col.unique, Mask: mc}
	}
	return info, nil
}

// tableName is the table of a collection: Table, or Name when Table is empty.
func tableName(c datastore.Collection) string {
	if c.Table != "" {
		return c.Table
	}
	return c.Name
}

// table returns the metadata of a table, from the cache when it is fresh.
func (d *Driver) table(ctx context.Context, op, name string) (*tableMeta, error) {
	d.mu.Lock()
	ct, ok := d.tables[name]
	d.mu.Unlock()
	if ok && time.Since(ct.at) < tableCacheTTL {
		return ct.meta, nil
	}
	return d.loadTable(ctx, op, name)
}

// forget drops a table from the cache (after DDL).
func (d *Driver) forget(name string) {
	d.mu.Lock()
	delete(d.tables, name)
	d.mu.Unlock()
}

// loadTable reads a table's metadata from information_schema and caches it.
func (d *Driver) loadTable(ctx context.Context, op, name string) (*tableMeta, error) {
	if err := checkIdent(op, "table", name); err != nil {
		return nil, err
	}
	t, err := d.readTable(ctx, op, name)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.tables[name] = cachedTable{meta: t, at: time.Now()}
	d.mu.Unlock()
	return t, nil
}

func (d *Driver) readTable(ctx context.Context, op, name string) (*tableMeta, error) {
	// information_schema compares names case-insensitively; pick the exact
	// spelling unless the server folds table names itself.
	rows, err := d.db.QueryContext(ctx, `SELECT TABLE_NAME, TABLE_TYPE, COALESCE(TABLE_ROWS, 0)
		FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?`, name)
	if err != nil {
		return nil, classify(op, err)
	}
	var t *tableMeta
	var folded []*tableMeta
	for rows.Next() {
		var m tableMeta
		if err := rows.Scan(&m.name, &m.tableType, &m.estimatedRows); err != nil {
			rows.Close()
			return nil, classify(op, err)
		}
		switch {
		case m.name == name:
			t = &m
		case strings.EqualFold(m.name, name):
			folded = append(folded, &m)
		}
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return nil, classify(op, err)
	}
	rows.Close()
	if t == nil && d.foldNames && len(folded) == 1 {
		t = folded[0]
	}
	if t == nil {
		return nil, notFound(op, "table %s does not exist", quote(name))
	}
	switch t.tableType {
	case "BASE TABLE":
	case "SYSTEM VERSIONED":
		// MariaDB keeps every deleted or updated row in the table's
		// history: erasing there would leave the data retrievable.
		return nil, invalid(op, "table %s is system-versioned: deleted rows stay in its history; Lethe does not erase such tables", quote(t.name))
	default:
		return nil, invalid(op, "%s is a %s, not a base table", quote(t.name), strings.ToLower(t.tableType))
	}
	if err := d.readColumns(ctx, op, t); err != nil {
		return nil, err
	}
	if err := d.readIndexes(ctx, op, t); err != nil {
		return nil, err
	}
	if err := d.readForeignKeys(ctx, op, t); err != nil {
		return nil, err
	}
	if err := d.readPartitions(ctx, op, t); err != nil {
		return nil, err
	}
	return t, nil
}

func (d *Driver) readColumns(ctx context.Context, op string, t *tableMeta) error {
	rows, err := d.db.QueryContext(ctx, `SELECT c.COLUMN_NAME, LOWER(c.DATA_TYPE), LOWER(c.COLUMN_TYPE),
			c.CHARACTER_MAXIMUM_LENGTH, c.CHARACTER_OCTET_LENGTH, c.IS_NULLABLE, cs.MAXLEN
		FROM information_schema.COLUMNS c
		LEFT JOIN information_schema.CHARACTER_SETS cs ON cs.CHARACTER_SET_NAME = c.CHARACTER_SET_NAME
		WHERE c.TABLE_SCHEMA = DATABASE() AND c.TABLE_NAME = ?
		ORDER BY c.ORDINAL_POSITION`, t.name)
	if err != nil {
		return classify(op, err)
	}
	defer rows.Close()
	t.columns = map[string]*column{}
	for rows.Next() {
		var c column
		var colType, nullable string
		var maxLen, octets, mbMax sql.NullInt64
		if err := rows.Scan(&c.name, &c.dataType, &colType, &maxLen, &octets, &nullable, &mbMax); err != nil {
			return classify(op, err)
		}
		c.nullable = nullable == "YES"
		c.unsigned = strings.Contains(colType, "unsigned")
		classifyColumn(&c, maxLen, octets, mbMax)
		t.columns[strings.ToLower(c.name)] = &c
		t.order = append(t.order, c.name)
	}
	if err := rows.Err(); err != nil {
		return classify(op, err)
	}
	if len(t.columns) == 0 {
		return notFound(op, "table %s has no visible columns", quote(t.name))
	}
	return nil
}

// classifyColumn sets a column's mask type, value kind and length limit from
// its DATA_TYPE.
func classifyColumn(c *column, maxLen, octets, mbMax sql.NullInt64) {
	c.maskType, c.valueKind = mask.Other, kindOther
	switch c.dataType {
	case "char", "varchar":
		c.maskType, c.valueKind = mask.Text, kindText
		c.maxChars = int(maxLen.Int64)
	case "tinytext", "text", "mediumtext", "longtext":
		c.maskType, c.valueKind = mask.Text, kindText
		// TEXT limits are in bytes; in characters that is the byte limit
		// over the longest character of the column's character set.
		if octets.Valid && mbMax.Valid && mbMax.Int64 > 0 {
			c.maxChars = int(octets.Int64 / mbMax.Int64)
		}
	case "binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob":
		c.maskType, c.valueKind = mask.Bytes, kindBytes
		c.maxChars = int(octets.Int64)
	case "datetime":
		c.maskType, c.valueKind = mask.Timestamp, kindDatetime
	case "timestamp":
		c.maskType, c.valueKind = mask.Timestamp, kindTimestamp
	case "date":
		c.maskType, c.valueKind = mask.Date, kindDate
	case "inet4", "inet6": // MariaDB 10.5+/10.10+
		c.maskType, c.valueKind = mask.IP, kindText
	case "tinyint", "smallint", "mediumint", "int", "integer", "bigint":
		c.valueKind = kindInt
		if c.unsigned {
			c.valueKind = kindUint
		}
	case "decimal", "numeric":
		c.valueKind = kindDecimal
	case "float", "double", "real":
		c.valueKind = kindFloat
	case "enum", "set", "json", "uuid":
		c.valueKind = kindText
	}
	if c.maxChars < 0 || c.maxChars > 1<<30 {
		c.maxChars = 0
	}
}

func (d *Driver) readIndexes(ctx context.Context, op string, t *tableMeta) error {
	rows, err := d.db.QueryContext(ctx, `SELECT INDEX_NAME, NON_UNIQUE, COLUMN_NAME
		FROM information_schema.STATISTICS
		WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?
		ORDER BY INDEX_NAME, SEQ_IN_INDEX`, t.name)
	if err != nil {
		return classify(op, err)
	}
	defer rows.Close()
	type index struct {
		name     string
		unique   bool
		cols     []string
		nullable bool
	}
	var idx []*index
	byName := map[string]*index{}
	for rows.Next() {
		var name string
		var nonUnique int
		var colName sql.NullString
		if err := rows.Scan(&name, &nonUnique, &colName); err != nil {
			return classify(op, err)
		}
		ix, ok := byName[name]
		if !ok {
			ix = &index{name: name, unique: nonUnique == 0}
			byName[name] = ix
			idx = append(idx, ix)
		}
		c, ok := t.col(colName.String)
		if !colName.Valid || !ok {
			ix.unique = false // functional index part: not a column key
			continue
		}
		ix.cols = append(ix.cols, c.name)
		ix.nullable = ix.nullable || c.nullable
		if ix.unique {
			c.unique = true
		}
	}
	if err := rows.Err(); err != nil {
		return classify(op, err)
	}
	sort.SliceStable(idx, func(i, j int) bool { return idx[i].name == "PRIMARY" && idx[j].name != "PRIMARY" })
	for _, ix := range idx {
		if ix.unique && len(ix.cols) > 0 {
			t.plainUnique = append(t.plainUnique, ix.cols)
		}
		if !ix.unique || ix.nullable || len(ix.cols) == 0 {
			continue
		}
		t.uniqueKeys = append(t.uniqueKeys, ix.cols)
		t.uniqueIndex = append(t.uniqueIndex, ix.name)
	}
	if len(t.uniqueKeys) > 0 {
		// The primary key, or the first unique NOT NULL key (which InnoDB
		// clusters the table on when there is no primary key).
		t.primaryKey = t.uniqueKeys[0]
		t.keyIndex = t.uniqueIndex[0]
	}
	return nil
}

func (d *Driver) readForeignKeys(ctx context.Context, op string, t *tableMeta) error {
	rows, err := d.db.QueryContext(ctx, `SELECT k.CONSTRAINT_NAME, k.COLUMN_NAME,
			k.REFERENCED_TABLE_SCHEMA, k.REFERENCED_TABLE_NAME, k.REFERENCED_COLUMN_NAME
		FROM information_schema.KEY_COLUMN_USAGE k
		JOIN information_schema.REFERENTIAL_CONSTRAINTS r
		  ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME
		 AND r.TABLE_NAME = k.TABLE_NAME
		WHERE k.TABLE_SCHEMA = DATABASE() AND k.TABLE_NAME = ? AND k.REFERENCED_TABLE_NAME IS NOT NULL
		ORDER BY k.CONSTRAINT_NAME, k.ORDINAL_POSITION`, t.name)
	if err != nil {
		return classify(op, err)
	}
	defer rows.Close()
	var cur *datastore.ForeignKey
	for rows.Next() {
		var name, col, refSchema, refTable, refCol string
		if err := rows.Scan(&name, &col, &refSchema, &refTable, &refCol); err != nil {
			return classify(op, err)
		}
		if cur == nil || cur.Name != name {
			t.foreignKeys = append(t.foreignKeys, datastore.ForeignKey{Name: name, RefSchema: refSchema, RefTable: refTable})
			cur = &t.foreignKeys[len(t.foreignKeys)-1]
		}
		cur.Columns = append(cur.Columns, col)
		cur.RefColumns = append(cur.RefColumns, refCol)
	}
	return classify(op, rows.Err())
}

func (d *Driver) readPartitions(ctx context.Context, op string, t *tableMeta) error {
	parts, err := d.queryPartitions(ctx, op, t.name)
	if err != nil {
		return err
	}
	t.partitions = parts
	return nil
}

// queryPartitions lists a table's partitions in order (subpartitions folded
// into their partition).
func (d *Driver) queryPartitions(ctx context.Context, op, table string) ([]partition, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT PARTITION_NAME, COALESCE(PARTITION_METHOD, ''),
			COALESCE(PARTITION_EXPRESSION, ''), COALESCE(PARTITION_DESCRIPTION, '')
		FROM information_schema.PARTITIONS
		WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND PARTITION_NAME IS NOT NULL
		ORDER BY PARTITION_ORDINAL_POSITION, SUBPARTITION_ORDINAL_POSITION`, table)
	if err != nil {
		return nil, classify(op, err)
	}
	defer rows.Close()
	var parts []partition
	for rows.Next() {
		var p partition
		if err := rows.Scan(&p.name, &p.method, &p.expression, &p.description); err != nil {
			return nil, classify(op, err)
		}
		if n := len(parts); n > 0 && parts[n-1].name == p.name {
			continue
		}
		parts = append(parts, p)
	}
	return parts, classify(op, rows.Err())
}

// batchKey resolves the columns batches are ordered and resumed by: the
// collection's PrimaryKey when given (it must contain a unique NOT NULL key,
// or keyset batching could skip rows), otherwise the table's primary key.
// It returns the columns as the server spells them and the index to scan.
func (d *Driver) batchKey(op string, t *tableMeta, c datastore.Collection) ([]string, string, error) {
	if len(c.PrimaryKey) == 0 {
		if len(t.primaryKey) == 0 {
			return nil, "", invalid(op, "table %s has no primary key or unique NOT NULL key to batch by; declare one", quote(t.name))
		}
		return t.primaryKey, t.keyIndex, nil
	}
	var key []string
	given := map[string]bool{}
	for _, name := range c.PrimaryKey {
		col, err := lookupColumn(op, t, name)
		if err != nil {
			return nil, "", err
		}
		if given[strings.ToLower(col.name)] {
			return nil, "", invalid(op, "primary key column %s is listed twice", quote(col.name))
		}
		given[strings.ToLower(col.name)] = true
		key = append(key, col.name)
	}
	for i, uk := range t.uniqueKeys {
		covered := true
		for _, c := range uk {
			covered = covered && given[strings.ToLower(c)]
		}
		if !covered {
			continue
		}
		index := ""
		if len(uk) == len(key) {
			// Same columns: scan that index when the order matches too.
			same := true
			for j := range uk {
				same = same && strings.EqualFold(uk[j], key[j])
			}
			if same {
				index = t.uniqueIndex[i]
			}
		}
		return key, index, nil
	}
	return nil, "", invalid(op, "the declared primary key of %s is not unique in the table (no unique NOT NULL index covers it)", quote(t.name))
}

// lookupColumn finds a named column or fails with ErrNotFound.
func lookupColumn(op string, t *tableMeta, name string) (*column, error) {
	if err := checkIdent(op, "column", name); err != nil {
		return nil, err
	}
	c, ok := t.col(name)
	if !ok {
		return nil, notFound(op, "column %s does not exist in table %s", quote(name), quote(t.name))
	}
	return c, nil
}

// timestampColumn finds the column that dates records; it must be DATETIME,
// TIMESTAMP or DATE.
func timestampColumn(op string, t *tableMeta, name string) (*column, error) {
	c, err := lookupColumn(op, t, name)
	if err != nil {
		return nil, err
	}
	switch c.valueKind {
	case kindDatetime, kindTimestamp, kindDate:
		return c, nil
	}
	return nil, invalid(op, "timestamp column %s of %s is %s; it must be datetime, timestamp or date", quote(c.name), quote(t.name), c.dataType)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
