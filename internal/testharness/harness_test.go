package testharness_test

import (
	"bytes"
	"context"
	"database/sql"
	"io"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/redis/go-redis/v9"

	"github.com/lethe-dev/lethe/internal/testharness"
)

func TestMain(m *testing.M) { testharness.Main(m) }

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestPostgres(t *testing.T) {
	t.Parallel()
	start := time.Now()
	pg := testharness.Postgres(t)
	t.Logf("Postgres(t) took %v: %s:%d db %s", time.Since(start).Round(time.Millisecond), pg.Host, pg.Port, pg.Database)
	if pg.Port == 5432 {
		t.Errorf("harness server on the standard port 5432")
	}
	conn, err := pgx.Connect(ctx(t), pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx(t))
	if _, err := conn.Exec(ctx(t), `CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx(t), `INSERT INTO users VALUES ($1, $2)`, 1, "a@example.com"); err != nil {
		t.Fatal(err)
	}
	var email, db string
	if err := conn.QueryRow(ctx(t), `SELECT email, current_database() FROM users WHERE id = 1`).Scan(&email, &db); err != nil {
		t.Fatal(err)
	}
	if email != "a@example.com" || db != pg.Database {
		t.Fatalf("read back %q from %q, want a@example.com from %q", email, db, pg.Database)
	}

	// A second call gets another, empty database.
	pg2 := testharness.Postgres(t)
	if pg2.Database == pg.Database || pg2.Port != pg.Port {
		t.Fatalf("second database %s:%d/%s, first %s:%d/%s", pg2.Host, pg2.Port, pg2.Database, pg.Host, pg.Port, pg.Database)
	}
	conn2, err := pgx.Connect(ctx(t), pg2.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close(ctx(t))
	var n int
	if err := conn2.QueryRow(ctx(t), `SELECT count(*) FROM pg_tables WHERE tablename = 'users'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("fresh database has a users table")
	}
}

func TestMariaDB(t *testing.T) {
	t.Parallel()
	start := time.Now()
	my := testharness.MariaDB(t)
	t.Logf("MariaDB(t) took %v: %s:%d db %s", time.Since(start).Round(time.Millisecond), my.Host, my.Port, my.Database)
	if my.Port == 3306 {
		t.Errorf("harness server on the standard port 3306")
	}
	if !strings.Contains(my.DSN, "parseTime=true") || !strings.Contains(my.DSN, "multiStatements=false") {
		t.Errorf("DSN %q lacks parseTime=true or multiStatements=false", my.DSN)
	}
	db, err := sql.Open("mysql", my.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx(t), `CREATE TABLE users (id BIGINT PRIMARY KEY, email VARCHAR(255) NOT NULL, created_at DATETIME(6) NOT NULL) ENGINE=InnoDB`); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	if _, err := db.ExecContext(ctx(t), `INSERT INTO users VALUES (?, ?, ?)`, 1, "ä@example.com", now); err != nil {
		t.Fatal(err)
	}
	var email, dbName string
	var created time.Time
	if err := db.QueryRowContext(ctx(t), `SELECT email, created_at, DATABASE() FROM users WHERE id = 1`).Scan(&email, &created, &dbName); err != nil {
		t.Fatal(err)
	}
	if email != "ä@example.com" || !created.Equal(now) || dbName != my.Database {
		t.Fatalf("read back %q %v from %q, want ä@example.com %v from %q", email, created, dbName, now, my.Database)
	}
	if _, err := db.ExecContext(ctx(t), `SELECT 1; SELECT 2`); err == nil {
		t.Errorf("multi-statement query accepted")
	}
	my2 := testharness.MariaDB(t)
	if my2.Database == my.Database {
		t.Fatalf("second call returned the same database %s", my.Database)
	}
}

func TestRedis(t *testing.T) {
	t.Parallel()
	start := time.Now()
	rd := testharness.Redis(t)
	t.Logf("Redis(t) took %v: %s db %d", time.Since(start).Round(time.Millisecond), rd.Addr, rd.DB)
	if rd.Port == 6379 {
		t.Errorf("harness server on the standard port 6379")
	}
	c := redis.NewClient(&redis.Options{Addr: rd.Addr, Password: rd.Password, DB: rd.DB})
	defer c.Close()
	if err := c.Set(ctx(t), "user:1:email", "a@example.com", 0).Err(); err != nil {
		t.Fatal(err)
	}
	got, err := c.Get(ctx(t), "user:1:email").Result()
	if err != nil || got != "a@example.com" {
		t.Fatalf("GET = %q, %v", got, err)
	}

	// A concurrent holder gets another logical database, and it is empty.
	rd2 := testharness.Redis(t)
	if rd2.DB == rd.DB || rd2.Addr != rd.Addr {
		t.Fatalf("second Redis(t) = %s/%d, first %s/%d", rd2.Addr, rd2.DB, rd.Addr, rd.DB)
	}
	c2 := redis.NewClient(&redis.Options{Addr: rd2.Addr, Password: rd2.Password, DB: rd2.DB})
	defer c2.Close()
	if n, err := c2.DBSize(ctx(t)).Result(); err != nil || n != 0 {
		t.Fatalf("DBSIZE of the second database = %d, %v; want 0", n, err)
	}
}

func TestRedisDatabaseIsFlushedWhenReused(t *testing.T) {
	var db int
	t.Run("dirty", func(t *testing.T) {
		rd := testharness.Redis(t)
		db = rd.DB
		c := redis.NewClient(&redis.Options{Addr: rd.Addr, DB: rd.DB})
		defer c.Close()
		if err := c.Set(ctx(t), "leftover", "x", 0).Err(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("reuse", func(t *testing.T) {
		rd := testharness.Redis(t)
		c := redis.NewClient(&redis.Options{Addr: rd.Addr, DB: rd.DB})
		defer c.Close()
		if rd.DB == db {
			if n, err := c.Exists(ctx(t), "leftover").Result(); err != nil || n != 0 {
				t.Fatalf("reused database %d still has the previous test's key (%d, %v)", db, n, err)
			}
		}
	})
}

func s3Client(t *testing.T, s testharness.S3Server) *minio.Client {
	t.Helper()
	host := strings.TrimPrefix(s.Endpoint, "http://")
	c, err := minio.New(host, &minio.Options{
		Creds:  credentials.NewStaticV4(s.AccessKeyID, s.SecretAccessKey, ""),
		Region: s.Region,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func putGet(t *testing.T, c *minio.Client, bucket, key, body string) {
	t.Helper()
	if _, err := c.PutObject(ctx(t), bucket, key, strings.NewReader(body), int64(len(body)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	obj, err := c.GetObject(ctx(t), bucket, key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	got, err := io.ReadAll(obj)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, []byte(body)) {
		t.Fatalf("GET %s/%s = %q, want %q", bucket, key, got, body)
	}
}

func TestS3(t *testing.T) {
	t.Parallel()
	start := time.Now()
	s := testharness.S3(t)
	t.Logf("S3(t) took %v: %s bucket %s", time.Since(start).Round(time.Millisecond), s.Endpoint, s.Bucket)
	c := s3Client(t, s)
	putGet(t, c, s.Bucket, "users/1/avatar.png", "not really a png")
	vc, err := c.GetBucketVersioning(ctx(t), s.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	if vc.Enabled() {
		t.Errorf("plain bucket has versioning enabled")
	}
}

func TestS3Versioned(t *testing.T) {
	t.Parallel()
	s := testharness.S3Versioned(t)
	c := s3Client(t, s)
	vc, err := c.GetBucketVersioning(ctx(t), s.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	if !vc.Enabled() {
		t.Fatalf("bucket versioning status %q, want Enabled", vc.Status)
	}
	putGet(t, c, s.Bucket, "doc.txt", "v1")
	putGet(t, c, s.Bucket, "doc.txt", "v2")
	if err := c.RemoveObject(ctx(t), s.Bucket, "doc.txt", minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	var versions, markers int
	for o := range c.ListObjects(ctx(t), s.Bucket, minio.ListObjectsOptions{WithVersions: true, Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		if o.IsDeleteMarker {
			markers++
		} else {
			versions++
		}
	}
	if versions != 2 || markers != 1 {
		t.Fatalf("after two puts and a delete: %d versions, %d delete markers; want 2 and 1", versions, markers)
	}
}
