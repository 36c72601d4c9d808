// Package postgres is Lethe's PostgreSQL driver (datastore.Driver), on pgx v5
// with a pgxpool of Config.MaxConnections connections (default 4).
//
// # Transactions and timeouts
//
// Every Execute batch is its own short transaction that starts with
// SET LOCAL lock_timeout and SET LOCAL statement_timeout from the Config
// (defaults 1s and 5s), so the settings end with the transaction and never
// leak into pooled sessions. BEGIN, the SETs and the batch's statements are
// pipelined: a plain delete batch is one or two round trips. Count and Total
// run in a read-only transaction with the lock timeout only; an exact count
// of a large table is bounded by the caller's context instead.
//
// lock_timeout is also a session parameter, sent when a connection is
// opened: pgx prepares a statement in its own round trip before the
// transaction, and parsing a statement on a table already waits for the
// table's lock (a held ACCESS EXCLUSIVE lock), as do catalog reads. So every
// lock wait of the driver is bounded by the Config's lock timeout, and a
// timeout is datastore.ErrLockTimeout naming it.
//
// # Identifiers and values
//
// Describe looks tables up in pg_catalog with the schema and table names as
// bound parameters, so a hostile name can only fail to match (ErrNotFound).
// Every identifier spliced into SQL is quoted with pgx.Identifier.Sanitize;
// type names in casts come from the catalog (quote_ident of the type's
// schema and name). Values are always bound parameters. Subject and hold
// identifiers are bound as text[] and cast by the server to the column's type
// without its modifier ($1::text[]::pg_catalog.varchar[], never varchar(20)[],
// whose cast would silently truncate an identifier into someone else's).
// Values that cannot be of an integer or uuid column's type are dropped before
// binding (they match nothing), so one malformed identifier does not fail a
// statement that coalesces many subjects. Error messages name the operation,
// SQLSTATE, table, column and constraint, never a value: the server's own
// message and detail, which can quote row values, are kept out of Error().
//
// # Selection
//
// One condition on the collection's table (alias t), shared by Count and
// Execute, so a dry run counts exactly what the real run touches:
//
//   - Cutoff: t.ts < $cutoff, strictly before.
//   - Subjects: t.f = ANY($values) for each identity type the collection
//     holds directly, OR-ed, all subjects of a type in one array. With Via
//     hops, nested subqueries, the identities matched at the end of the path:
//     t.order_id IN (SELECT s1.id FROM orders AS s1 WHERE s1.user_id IN
//     (SELECT s2.id FROM users AS s2 WHERE s2.email = ANY($1))).
//   - Legal holds: AND (<held>) IS NOT TRUE, where <held> is the OR of the
//     record's own identity fields against the held values and, through each
//     Via hop, EXISTS (SELECT 1 FROM parent AS h1 WHERE h1.id = t.order_id
//     AND (<held at the parent>)). IS NOT TRUE rather than NOT: a NULL
//     identity is not held, while NOT (NULL = ANY(...)) is NULL and would keep
//     the record out of every batch forever without saying so.
//
// A record whose timestamp is NULL is never selected by age.
//
// # Cutoff semantics
//
// The cutoff is an absolute instant fixed by the PurgeJob. A timestamptz
// column is compared with it directly. A timestamp (without time zone) column
// holds wall-clock readings in Collection.TimestampLocation (nil = UTC): it is
// compared with the cutoff converted to that location's wall clock, bound as
// a timestamp, so neither the session's TimeZone nor the server's matters. A
// date column compares the same way, as the midnight that starts the day in
// that location: a day is selected once the cutoff is past its first
// instant (with the cutoff at 2024-05-10 12:00 in the location, 2024-05-10
// is selected, 2024-05-11 is not). The cutoff is rounded up to the
// microsecond, the server's resolution, which keeps "strictly before" exact.
//
// # Walks, cursors and resumption
//
// Execute walks the selection in key order, one bounded batch per call, and
// returns a JSON cursor (version, table tag, walk, partition phase, the text of
// the last key, done, and for the timestamp walk the next range width). A
// cursor written before the width existed resumes with an exact bound; a
// negative or absurd width fails as ErrInvalid. The walk is fixed by the first batch and kept in the
// cursor:
//
//   - Delete by subject: no cursor key at all. Every batch deletes the first
//     BatchSize matching rows; deleted rows are gone, so nothing is visited
//     twice, and since no batch has a lower bound nothing is left behind,
//     not even a row inserted for the subject while the job runs (with random
//     keys such as UUIDs a keyset cursor would skip those).
//   - Delete by age along an index whose first column is the timestamp:
//     each batch deletes the matching rows of one timestamp range with one
//     plain range DELETE (t.ts >= $cursor AND t.ts < the bound), the same
//     per-row work as one unbounded DELETE. The first batch reads from the
//     index alone the timestamp of the (BatchSize+1)-th row at or after the
//     cursor as its bound (one index-only pass, in the same pipeline as the
//     DELETE); the bound passes from the first statement to the second
//     through a transaction-local setting (set_config, current_setting).
//     Later batches estimate the bound from the previous batch's density
//     (the cursor carries the range width, "w", and the batch size it aims
//     at, "n": a batch of another size, as adaptive batches are, scales the
//     width to its own) to hold about 90% of BatchSize, and roll the DELETE back and retry narrower when it
//     affected more than BatchSize rows; after two overshoots, a statement
//     timeout, or a range without deleted rows, the next bound is read from
//     the index again. The cursor is that bound, inclusive: rows at the
//     bound timestamp are simply found again by the next batch. When more
//     than BatchSize rows share one timestamp the batch deletes BatchSize of
//     them by ctid instead.
//   - Otherwise (anonymize, or no usable index): keyset on the primary key,
//     or on (timestamp, primary key) when anonymizing along a timestamp
//     index, strictly after the cursor. Delete batches select up to
//     BatchSize keys in that order and delete them in the same statement:
//     DELETE … WHERE t.ctid = ANY((SELECT tids FROM s)::tid[]) on plain
//     tables, by primary key on partitioned ones (whose partition key the
//     statement bounds by the batch's range, so other partitions are pruned).
//
// Why resuming a delete never misses a row: a batch deletes every row that
// matches at its snapshot between the cursor and its new cursor (the first
// BatchSize matching rows in walk order), so after it no matching row is
// left below the new cursor; the next batch starts there. A resumed job
// passes the last persisted cursor back: if the last batch committed but its
// cursor was lost, the older cursor is only lower, the rows of that batch are
// gone, and the next batch continues with the rows after them (Affected sums
// stay exact). Rows are never skipped for being locked (no SKIP LOCKED): a
// batch waits for row locks, bounded by lock_timeout, and a timeout is
// ErrUnavailable, retried later from the same cursor. The DELETE repeats the
// selection's condition, so a row that a concurrent transaction changes
// between selection and deletion is re-checked on its new version and left
// alone if it no longer matches; when a batch deleted fewer rows than it
// selected, the cursor does not advance and the operation is not done. Done
// is reported only by a batch that selected fewer than BatchSize rows and
// deleted all of them (or a range delete whose bound was the cutoff or that
// had none): that
// statement saw no other matching row. What a cursor cannot cover is a row
// that starts to match behind it while the job runs (inserted with an old
// timestamp, or updated to one): it is left to the next scheduled run.
//
// Anonymization never masks a row twice within a run: its cursor is strict,
// and a finished cursor stays finished (Execute returns Done without touching
// anything). A done cursor carries no key; intermediate cursors carry the
// text of key values (primary key, timestamp), so the engine should treat a
// cursor as sensitive: a table keyed by a subject identifier puts that
// identifier in it.
//
// # Statements
//
// A delete batch that selects its rows (by subject, by key, or a run of
// equal timestamps) does so and deletes them in one statement. On a plain
// table the batch is one array of ctids and the DELETE a TID scan:
//
//	WITH s AS MATERIALIZED (SELECT ARRAY(SELECT t.ctid FROM tbl AS t
//	                        WHERE <cond> AND <after cursor> ORDER BY <key> LIMIT n) AS tids),
//	     d AS (DELETE FROM tbl AS t WHERE t.ctid = ANY((SELECT tids FROM s)::tid[])
//	           AND <cond> RETURNING <key>)
//	SELECT cardinality(tids), count(d), <greatest key of d as text>
//
// On a partitioned table, where a ctid is only unique within one partition,
// the batch is a CTE b of primary key, walk key and partition key columns and
// the DELETE finds rows by primary key, bounding the partition key by the
// batch's range so the executor prunes every other partition (a key =
// ANY(...) probe would visit each partition's index):
// WHERE t.part >= (SELECT min(part) FROM b) AND t.part <= (SELECT max(part) FROM b)
// AND (t.pk1, …) IN (SELECT pk1, … FROM b). SetDeleteShape(DeleteShapeKey) on
// a plain table uses WHERE t.pk1 = ANY(ARRAY(SELECT pk1 FROM b)) instead of
// the partition bounds: the leading key column as = ANY(array) makes the
// planner probe the primary key index once per batch row, where a plain join
// against b would let it hash-join every row matching the condition. The
// condition is repeated in the DELETE, and with ctids a row updated in
// between has a new ctid and is left alone too (see above).
//
// A range delete batch (the timestamp walk) is one plain range DELETE,
// DELETE FROM tbl AS t WHERE <cond> AND t.ts >= $cursor AND t.ts < <bound>,
// with the per-row cost of the unbounded DELETE. The bound is found one of
// two ways. Estimated, when the cursor carries a width (after the first
// batch): the cursor plus the width, at most the cutoff. No index pass is
// needed, but the DELETE's row count is only known after it ran, so the
// batch takes two round trips (BEGIN, SET LOCALs, bound, DELETE; then COMMIT
// or ROLLBACK): a DELETE that affected more than BatchSize rows is rolled
// back and retried once with a range narrowed to the density it found, so no
// committed batch ever touches more than BatchSize rows. Exact (the first
// batch, a cursor without a width, date columns, or after the estimate
// failed): one transaction, pipelined in one round trip. It reads from the
// index alone the timestamp of the (n+1)-th row at or after the cursor
// (before the cutoff), keeps it in a transaction-local setting, and deletes
// the matching rows strictly before it:
//
//	BEGIN; SET LOCAL …;
//	SELECT s.b::text, set_config('lethe.batch_bound', coalesce(s.b::text, 'infinity'), true), <width of [lo, b)>
//	  FROM (SELECT (SELECT t.ts FROM tbl AS t WHERE t.ts < $cutoff AND t.ts >= $cursor
//	                ORDER BY t.ts OFFSET n LIMIT 1) AS b, $cursor AS lo) AS s;
//	DELETE FROM tbl AS t WHERE <cond> AND t.ts >= $cursor
//	  AND t.ts < current_setting('lethe.batch_bound')::timestamptz;
//	COMMIT
//
// (the first batch takes the first expired row's timestamp as lo). The index
// pass costs about a quarter of the DELETE; its range and row count seed the
// width of the next batch. Either way current_setting is stable, so the
// bound is an index condition of the DELETE like a parameter, and the bound
// goes out and back as text in the same session, so TimeZone and DateStyle
// cancel out. A batch needs no separate selection: a concurrently changed
// row is re-checked by the DELETE itself. When the bound is the cutoff
// (estimated) or there is none because at most n rows are left (exact,
// 'infinity'), the DELETE took the rest and the operation is done. When more
// than n rows share the cursor's timestamp (or every row of the range is
// held) the exact range deletes nothing, so the batch then deletes the first
// n matching rows at or after the cursor by ctid (or key) instead, in a
// second transaction. One statement with the bound in a CTE would cost about
// 50% more server CPU per row (measured): the DELETE then has to go through
// a CTE with RETURNING to report its count.
//
// An anonymize batch, in one
// transaction, locks and reads the next BatchSize matching rows in walk order
// (SELECT <key>, <fields> … ORDER BY <key> LIMIT n FOR UPDATE), computes the
// masked values in Go with mask.Strategy.Apply for the column's type family
// (text, varchar, char → Text with the length limit; bytea → Bytes;
// timestamptz and timestamp → Timestamp; date → Date; inet and cidr → IP;
// anything else → Other), and writes them back with one
// UPDATE … SET f = u.v::type FROM unnest($1::text[], …) AS u(…) WHERE
// (t.pk) = (u.pk::type). timestamptz values reach the strategy in UTC,
// timestamp and date values as their wall-clock fields, inet as netip.Addr
// (a single address) or netip.Prefix. Primary key columns cannot be
// anonymized in place.
//
// # Partition fast path
//
// A plain age-based delete (no subjects, no holds) on a table
// range-partitioned on exactly its timestamp column first drops the
// partitions whose upper bound is at or before the cutoff, one per Execute
// call: in one transaction it locks the partition against writes, counts its
// rows (Affected), DETACHes it (the parent's exclusive lock is bounded by
// lock_timeout and held only for DETACH and DROP) and DROPs it, reporting
// PartitionsDropped. Every row of such a partition is strictly before its
// upper bound, hence before the cutoff. The bound literal is read and cast
// back in the same session, so the session's TimeZone and DateStyle cancel
// out; bounds of a timestamp or date partition key compare as wall clock in
// TimestampLocation, like rows. The count runs under the statement timeout
// like any batch statement: a partition too large to count within it fails
// with ErrUnavailable until the timeout is raised. DEFAULT and MAXVALUE partitions
// are never dropped. When no expired partition is left, the cursor records
// that the partition phase is over and batches delete the rest (straddling
// and default partitions) through the parent.
//
// # Describe and the cache
//
// Describe always reads the catalog: columns (base type name, character
// length, nullability), the primary key (or the narrowest unique index on NOT
// NULL columns; the collection's declared key wins), foreign keys, whether
// the table is range-partitioned, and reltuples summed over leaf partitions.
// Execute and Count use a per-collection cache of that description, dropped
// after ten minutes or as soon as the server reports an undefined table or
// column.
package postgres
