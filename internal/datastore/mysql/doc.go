// Package mysql is Lethe's driver for MySQL (5.7.8 and later) and MariaDB
// (10.3 and later), built on github.com/go-sql-driver/mysql and database/sql.
//
// # Connections
//
// New opens at most Config.MaxConnections connections to Config.Database
// and reads VERSION() to tell MariaDB from MySQL. Every connection starts with
//
//	SET time_zone = '+00:00', innodb_lock_wait_timeout = N, lock_wait_timeout = N,
//	    transaction_isolation (or tx_isolation) = 'READ-COMMITTED'
//
// where N is Config.LockTimeout in whole seconds, rounded up (at least 1).
// READ COMMITTED makes a batch's locking read lock only the rows it returns
// and take no gap locks, so the application's inserts are not blocked; a
// server whose binary log is statement-based keeps its default isolation,
// because it refuses READ COMMITTED writes to InnoDB. Values are always bound
// parameters of server-side prepared statements; identifiers are quoted with
// backticks (a backtick inside is doubled) after being checked against
// MySQL's rules, and resolved against information_schema first, so a name
// that is not a table or column fails with ErrNotFound before it reaches any
// statement.
//
// # Batches
//
// Execute runs one batch in its own short transaction. Its statements carry
// the statement time limit Config.StatementTimeout: on MariaDB as
// SET STATEMENT max_statement_time=<seconds> FOR …, on MySQL as the
// MAX_EXECUTION_TIME optimizer hint, which MySQL honours in SELECT only (its
// DELETE and UPDATE are bounded by the lock wait timeout and by a client-side
// deadline on the whole batch). Batches walk the primary key (or, without
// one, the first unique NOT NULL key) in order, resuming after the cursor's
// last key; composite keys are compared as (a > ?) OR (a = ? AND b > ?) so the
// range optimizer can use the index. Purges force that index (the batches
// together make one pass over the table, like pt-archiver); subject erasures
// let the optimizer start from the identity index.
//
// A delete batch reads the keys of the next n matching rows through the key
// index, without locking, and deletes the matching rows between the first and
// the last of those keys:
//
//	SELECT key FROM t FORCE INDEX (PRIMARY) WHERE <match> AND key > <cursor> ORDER BY key LIMIT n
//	DELETE FROM t WHERE <match> AND key >= <first> AND key <= <last> ORDER BY key LIMIT n
//
// Both statements are bounded on the key, so the optimizer cannot prefer the
// timestamp index and sort the whole expired range (single-table DELETE takes
// no index hint), and the DELETE re-checks the predicate, so rows changed in
// between are respected. BenchmarkDeleteModes in this package compares it
// with one DELETE … ORDER BY key LIMIT n RETURNING key (MariaDB) and with
// locking the keys (SELECT … FOR UPDATE) and deleting by key list; on
// 100,000 rows, three quarters expired, batch 1000, it was 3.4× and 5.8×
// faster than those, on a heavily loaded machine.
//
// An anonymize batch locks its rows (SELECT key, fields … ORDER BY key
// LIMIT n FOR UPDATE), computes the new values in Go with mask.Strategy.Apply
// and writes them back with one UPDATE … SET f = CASE key WHEN ? THEN ? …
// ELSE f END WHERE key IN (…) per 500 rows, in the same transaction. The
// UPDATE can only change rows that exist (unlike INSERT … ON DUPLICATE KEY
// UPDATE), and a row is masked once per operation because the cursor moves
// past it. Column types map to mask types as char/varchar/text → Text (limit
// in characters: the column's, or for TEXT types its byte limit over the
// character set's longest character), binary/varbinary/blob → Bytes,
// datetime/timestamp → Timestamp, date → Date, MariaDB inet4/inet6 → IP,
// everything else → Other. Key columns cannot be anonymized.
//
// A batch is done when it found fewer rows than the batch size. The
// cursor is an opaque string holding the last key of the batch (so, for a
// table keyed by an identity, it holds one) and whether the partition phase
// is over; it is tied to the table and key it was made for.
//
// # Time
//
// A cutoff selects rows with timestamp < cutoff, strictly. The cutoff is
// rounded up to the next microsecond, the finest precision a column holds,
// which keeps the comparison exact.
//
//   - DATETIME holds wall-clock time without a zone. It is read as wall-clock
//     time in Collection.TimestampLocation (nil: UTC): the cutoff instant is
//     converted to that location's wall clock and bound as such. In the hour a
//     daylight-saving change repeats, wall clocks are ambiguous; rows there
//     are compared by their wall clock.
//   - TIMESTAMP is stored as UTC and converted to the session time zone,
//     which the driver sets to '+00:00': the cutoff is bound as UTC.
//   - DATE is dated at its midnight in TimestampLocation: it is before the
//     cutoff when it is before the first midnight at or after the cutoff.
//
// When anonymizing, DATETIME values are handed to mask as times in
// TimestampLocation (so Generalize truncates to that zone's day), TIMESTAMP
// values in UTC and DATE values as UTC midnights.
//
// # Subjects and legal holds
//
// Subjects (identity type → values) become IN (?,…) lists on the
// collection's identity fields, OR'ed across types and split into lists of
// 500 values. With Via, the collection is reached through nested IN
// subqueries, e.g. for order_items → orders → users:
//
//	order_items.order_id IN (SELECT h1.id FROM orders AS h1 WHERE h1.user_id IN (?,…))
//
// Held identities are excluded in the same statement with
// (<held>) IS NOT TRUE, where <held> matches the collection's own identity
// fields and, through Via, the identity fields of every table on the path.
// A NULL identity, or a reference that leads nowhere, is not held.
// Identity values are bound as integers for integer columns (MySQL would
// compare a string with an integer as floating point), so a value that is
// not an integer matches nothing there. One operation takes at most 30,000
// subject and held values (every one is a bound parameter).
//
// # Partitions
//
// A purge of a table partitioned by RANGE on the timestamp column
// (TO_DAYS, TO_SECONDS, UNIX_TIMESTAMP or YEAR of it, or RANGE COLUMNS on
// it) first drops, in one ALTER TABLE … DROP PARTITION, every partition whose
// whole range lies before the cutoff (the server evaluates the partition
// function on the cutoff) and that holds no row the batched path would keep
// (a NULL timestamp, a held row); their rows are counted first and reported
// as Affected with PartitionsDropped. The count reads every dropped row once
// (without locks and without a statement time limit, since a limit would make
// a large partition undroppable); the DROP waits at most lock_wait_timeout for
// the table's metadata lock, which also bounds how long it can stall the
// application's queries on the table. The cursor then records that the
// partition phase is over, and the straddling partition and the rest of the
// table are purged in batches. Subject erasures never drop partitions.
//
// # Errors
//
// Errors are *Error values wrapping datastore.ErrUnavailable (network, lock
// wait timeout 1205, deadlock 1213, statement timeout 1969/3024, read-only
// server…), ErrAuthentication (1045 and other access-denied errors),
// ErrNotFound (1146 no such table, 1054 unknown column, and names not found
// in information_schema) or ErrInvalid. Their messages name the operation,
// table, column and error number, never a value: the server's own message is
// not included, because MySQL quotes values in it.
//
// # MySQL and MariaDB
//
// Differences handled: the statement time limit (see above); the isolation
// variable (transaction_isolation in MySQL 8 and MariaDB 11.1+, tx_isolation
// before), found by asking the server; MariaDB's INET4/INET6 types (IP);
// MariaDB's system-versioned tables, which keep deleted rows in their history
// and are refused with ErrInvalid; the timeout error numbers (1969 MariaDB,
// 3024 MySQL). The MySQL path is tested against MariaDB with the dialect
// switched (MariaDB reads the MAX_EXECUTION_TIME hint as a comment), not
// against a MySQL server.
package mysql
