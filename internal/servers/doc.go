// Package servers starts and stops throwaway datastore servers: PostgreSQL,
// MariaDB, Redis and an S3 server (versitygw with its posix backend). The
// test harness (internal/testharness, a thin testing.TB wrapper) and `make
// demo` (hack/demo) both run their servers through it.
//
// A Group owns a directory; every server it starts gets a directory of its
// own below it and listens on a free 127.0.0.1 port:
//
//	g := servers.NewGroup(dir)
//	defer g.Close()                                               // stops them all
//	pg, err := g.StartPostgres(ctx, servers.PostgresOptions{})    // pg.CreateDatabase, pg.URL
//	my, err := g.StartMariaDB(ctx)                                // my.CreateDatabase, my.DSN
//	rd, err := g.StartRedis(ctx, servers.RedisOptions{})          // rd.Addr()
//	s3, err := g.StartS3(ctx, servers.S3Options{})                // s3.CreateBucket, s3.Client()
//
// For replication: StartPostgres with PostgresOptions.Replication and then
// StartPostgresStandby (pg_basebackup and a second server following it),
// StartMariaDBWith with MariaDBOptions.LogBin and then StartMariaDBReplica
// (a second mariadbd, CHANGE MASTER TO the primary's current position).
// A started PostgreSQL can be stopped and started again (Postgres.Stop,
// Postgres.Start), to test outages.
//
// ConnectPostgres, ConnectMariaDB, ConnectRedis and ConnectS3 wrap a server
// that already runs in the same types, so a caller can hand out databases
// and buckets on either.
//
// Every server runs in a process group of its own (so a terminal's Ctrl-C
// reaches the caller only, which then stops them in order) with SIGKILL as
// its parent-death signal (so a caller that is killed takes them along).
// Close does not remove the directory: the caller owns it. SweepStale removes
// directories left behind by callers that were killed, and
// ReleaseSharedMemory the System V segment a killed PostgreSQL leaves.
//
// Binaries come from the Debian packages postgresql, mariadb-server and
// redis-server (initdb/postgres are looked up in PATH, then in the highest
// /usr/lib/postgresql/*/bin), and versitygw from bin/versitygw at the
// repository root, which hack/build-versitygw.sh builds from Go modules (Start
// runs it itself the first time). A missing binary is a *MissingError naming
// the command that installs it.
//
// The first process on a machine that initialises a PostgreSQL or MariaDB
// data directory (initdb, mariadb-install-db) keeps a pristine copy in
// ${XDG_CACHE_HOME:-$HOME/.cache}/lethe/servers/, keyed by the server
// binaries; later starts copy it, which is several times faster. The
// bootstrap password of a copy is replaced by a random one at every start.
//
// PostgreSQL refuses to run as root, so when the caller runs as root the
// server runs as the "postgres" system user (or "nobody" when it does not
// exist); the Group's directory must then be traversable by that user
// (TempParent picks a parent that is). MariaDB runs with --user=root.
package servers
