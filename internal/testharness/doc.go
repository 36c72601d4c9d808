// Package testharness starts throwaway datastores for tests: PostgreSQL,
// MariaDB, Redis and an S3 server (versitygw with its posix backend).
//
// Every package whose tests use it must run them through Main:
//
//	func TestMain(m *testing.M) { testharness.Main(m) }
//
// A test then asks for what it needs and gets a fresh, empty namespace on a
// server that the test process starts lazily, once, on a free 127.0.0.1 port
// in a temporary directory:
//
//	pg := testharness.Postgres(t)      // fresh database; pg.DSN is a postgres:// URL for pgx
//	my := testharness.MariaDB(t)       // fresh database; my.DSN is for go-sql-driver/mysql
//	rd := testharness.Redis(t)         // a logical DB of its own, flushed; rd.Addr, rd.DB
//	s3 := testharness.S3(t)            // fresh bucket; s3.Endpoint, credentials, s3.Bucket
//	s3v := testharness.S3Versioned(t)  // fresh bucket with versioning enabled
//
// Databases and buckets are not dropped when a test ends: the whole server and
// its directory go away when Main returns (or on SIGINT/SIGTERM). Servers are
// also started with a parent-death signal, so a test binary killed by
// `go test -timeout` does not leave them running; directories left behind by
// such a run are removed by the next run.
//
// The servers themselves are started and stopped by internal/servers (which
// `make demo` uses too); see its documentation for where the binaries come
// from, the cached data directory templates and running as root. A missing
// binary fails the test with the command that installs it: a missing
// datastore is never a skip.
//
// Manager runs the real manager binary (internal/managerproc) for a test and
// stops it at the test's end:
//
//	m := testharness.Manager(t, managerproc.Options{Config: cfg, Namespaces: []string{ns}, Log: &logs})
//
// # Using servers you already run
//
// These environment variables make the harness use an existing server instead
// of starting one. It still creates a fresh database (or bucket, or flushed
// logical DB) per call, so the account needs the right to do that.
//
//	LETHE_TEST_POSTGRES_DSN  postgres://user:password@host:port/anydb?sslmode=disable
//	                         (the user needs CREATEDB; the path names the database to
//	                         connect to for administration)
//	LETHE_TEST_MYSQL_DSN     user:password@tcp(host:port)/ (go-sql-driver/mysql form;
//	                         the user needs CREATE on *.*)
//	LETHE_TEST_REDIS_ADDR    host:port or redis://[:password@]host:port; logical DBs
//	                         1..databases-1 are handed out and FLUSHed, DB 0 is left alone.
//	                         Test processes of different packages do not coordinate, so
//	                         run `go test -p 1` when pointing at one shared server.
//	LETHE_TEST_S3_ENDPOINT   http://ACCESS_KEY:SECRET_KEY@host:port (region from
//	                         LETHE_TEST_S3_REGION, default us-east-1); S3Versioned needs
//	                         a server that supports bucket versioning.
package testharness
