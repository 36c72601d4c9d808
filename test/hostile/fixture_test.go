package hostile

import (
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/redis/go-redis/v9"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/lethe-dev/lethe/internal/managerproc"
	"github.com/lethe-dev/lethe/internal/testharness"
)

// stores are the four throwaway stores with their sentinel data.
type stores struct {
	pg testharness.PG
	my testharness.MySQL
	rd testharness.RedisServer
	s3 testharness.S3Server
}

// Sentinel data: every table, key and object below is checksummed before
// and after the suite. Only scratch (the RBAC flow's policy run) may change.
var (
	pgSentinel = []string{
		`CREATE TABLE users (id bigint PRIMARY KEY, email text UNIQUE NOT NULL, role text NOT NULL DEFAULT 'member', note text, created_at timestamptz NOT NULL)`,
		`CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint NOT NULL REFERENCES users(id), shipping text, created_at timestamptz NOT NULL)`,
		// events has no unique key at all: id repeats.
		`CREATE TABLE events (id bigint NOT NULL, user_id bigint NOT NULL, payload text, created_at timestamptz NOT NULL)`,
		// partial_uq's only unique index is partial; nullable_uq's allows NULLs.
		`CREATE TABLE partial_uq (id bigint NOT NULL, created_at timestamptz NOT NULL)`,
		`CREATE UNIQUE INDEX partial_uq_id ON partial_uq (id) WHERE id > 0`,
		`CREATE TABLE nullable_uq (code text UNIQUE, created_at timestamptz NOT NULL)`,
		`INSERT INTO users SELECT i, 'u' || i || '@example.com', 'member', 'note ' || i, timestamptz '2020-01-01' + i * interval '1 day' FROM generate_series(1, 20) i`,
		`INSERT INTO orders SELECT i, 1 + i % 20, 'street ' || i, timestamptz '2020-02-01' + i * interval '1 day' FROM generate_series(1, 40) i`,
		`INSERT INTO events SELECT i % 10, 1 + i % 20, 'p' || i, timestamptz '2020-03-01' + i * interval '1 hour' FROM generate_series(1, 30) i`,
		`INSERT INTO partial_uq SELECT i - 3, timestamptz '2020-01-01' FROM generate_series(1, 6) i`,
		`INSERT INTO nullable_uq VALUES ('a', '2020-01-01'), (NULL, '2020-01-01'), (NULL, '2020-01-02')`,
		`CREATE TABLE scratch (id bigint PRIMARY KEY, created_at timestamptz NOT NULL)`,
		`INSERT INTO scratch SELECT i, timestamptz '2020-01-01' FROM generate_series(1, 10) i`,
	}
	pgChecksummed = []string{"users", "orders", "events", "partial_uq", "nullable_uq"}

	mySentinel = []string{
		"CREATE TABLE subscribers (id BIGINT PRIMARY KEY, email VARCHAR(255) NOT NULL UNIQUE, created_at DATETIME NOT NULL)",
		// email_events has no unique key: id repeats.
		"CREATE TABLE email_events (id BIGINT NOT NULL, subscriber_id BIGINT NOT NULL, kind VARCHAR(20), created_at DATETIME NOT NULL, KEY (subscriber_id))",
		"INSERT INTO subscribers VALUES (1, 'a@example.com', '2020-01-01'), (2, 'b@example.com', '2020-01-02'), (3, 'c@example.com', '2020-01-03')",
		"INSERT INTO email_events VALUES (1, 1, 'open', '2020-01-01'), (1, 2, 'click', '2020-01-02'), (2, 3, 'open', '2020-01-03'), (2, 1, 'open', '2020-01-04')",
	}
	myChecksummed = []string{"subscribers", "email_events"}
)

// fillStores starts the stores and writes the sentinels.
func fillStores(t *testing.T) stores {
	t.Helper()
	var s stores
	s.pg = testharness.Postgres(t)
	conn, err := pgx.Connect(ctx(), s.pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx())
	for _, q := range pgSentinel {
		if _, err := conn.Exec(ctx(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}

	s.my = testharness.MariaDB(t)
	db := mysqlDB(t, s.my)
	for _, q := range mySentinel {
		if _, err := db.ExecContext(ctx(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}

	s.rd = testharness.Redis(t)
	if s.rd.DB > 15 {
		t.Fatalf("testharness handed out Redis DB %d; a DataStore's redisDB is at most 15", s.rd.DB)
	}
	rc := redisClient(s.rd)
	defer rc.Close()
	old := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	for i := 1; i <= 5; i++ {
		must(t, rc.Set(ctx(), fmt.Sprintf("keep:%d", i), fmt.Sprintf("v%d", i), 0).Err())
		must(t, rc.HSet(ctx(), fmt.Sprintf("session:u%d:a", i), "last_seen", old, "ip", "10.0.0.1").Err())
		// Keys that a pattern made of a placeholder alone would match.
		must(t, rc.Set(ctx(), fmt.Sprintf("u%d:profile", i), "p", 0).Err())
	}

	s.s3 = testharness.S3(t)
	mc := s3Client(t, s.s3)
	for _, key := range []string{"keep/1.txt", "keep/2.txt", "uploads/u1/pic.jpg", "uploads/u2/pic.jpg", "u1/secret.txt", "other/x.txt"} {
		_, err := mc.PutObject(ctx(), s.s3.Bucket, key, strings.NewReader("data of "+key), -1, minio.PutObjectOptions{})
		must(t, err)
	}
	return s
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func mysqlDB(t *testing.T, my testharness.MySQL) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", my.DSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func redisClient(rd testharness.RedisServer) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: rd.Addr, Password: rd.Password, DB: rd.DB})
}

func s3Client(t *testing.T, s testharness.S3Server) *minio.Client {
	t.Helper()
	host := strings.TrimPrefix(s.Endpoint, "http://")
	c, err := minio.New(host, &minio.Options{Creds: credentials.NewStaticV4(s.AccessKeyID, s.SecretAccessKey, ""), Region: s.Region, BucketLookup: minio.BucketLookupPath})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// checksums reads every sentinel back from the stores: SQL md5 over the
// rows (PostgreSQL) or CHECKSUM TABLE (MariaDB) with counts, the system
// catalogs' roles and users, every Redis key with its DUMP, and the S3
// listing with ETags and sizes.
func (s stores) checksums(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	conn, err := pgx.Connect(ctx(), s.pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx())
	for _, table := range append(slices.Clone(pgChecksummed), "pg_catalog.pg_authid") {
		var n int64
		var sum string
		q := fmt.Sprintf(`SELECT count(*), coalesce(md5(string_agg(t::text, ',' ORDER BY t::text)), '') FROM %s t`, table)
		if err := conn.QueryRow(ctx(), q).Scan(&n, &sum); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		out["postgres "+table] = fmt.Sprintf("%d rows, md5 %s", n, sum)
	}

	db := mysqlDB(t, s.my)
	for _, table := range append(slices.Clone(myChecksummed), "mysql.user", "mysql.db") {
		var name string
		var sum sql.NullInt64
		if err := db.QueryRowContext(ctx(), "CHECKSUM TABLE "+table+" EXTENDED").Scan(&name, &sum); err != nil {
			t.Fatalf("CHECKSUM TABLE %s: %v", table, err)
		}
		var n int64
		if err := db.QueryRowContext(ctx(), "SELECT COUNT(*) FROM "+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		out["mariadb "+table] = fmt.Sprintf("%d rows, checksum %d", n, sum.Int64)
	}

	rc := redisClient(s.rd)
	defer rc.Close()
	var keys []string
	iter := rc.Scan(ctx(), 0, "*", 1000).Iterator()
	for iter.Next(ctx()) {
		keys = append(keys, iter.Val())
	}
	must(t, iter.Err())
	slices.Sort(keys)
	h := sha256.New()
	for _, k := range keys {
		dump, err := rc.Dump(ctx(), k).Result()
		must(t, err)
		fmt.Fprintf(h, "%q=%x\n", k, dump)
	}
	out["redis keys"] = fmt.Sprintf("%d keys, sha256 %s", len(keys), hex.EncodeToString(h.Sum(nil)))

	mc := s3Client(t, s.s3)
	var objects []string
	for o := range mc.ListObjects(ctx(), s.s3.Bucket, minio.ListObjectsOptions{Recursive: true}) {
		must(t, o.Err)
		objects = append(objects, fmt.Sprintf("%s %s %d", o.Key, o.ETag, o.Size))
	}
	slices.Sort(objects)
	sum := sha256.Sum256([]byte(strings.Join(objects, "\n")))
	out["s3 objects"] = fmt.Sprintf("%d objects, sha256 %s", len(objects), hex.EncodeToString(sum[:]))
	return out
}

// --- RBAC --------------------------------------------------------------------

const (
	managerUser = "lethe-manager"
	userName    = "mallory"
)

// lethePlural are Lethe's resources, which the namespace user may edit.
var lethePlural = []string{"datastores", "datasets", "retentionpolicies", "deletionrequests", "legalholds", "purgejobs", "recipients", "erasurereplays"}

// grant installs, as the admin, the manager's shipped namespaced Role
// (config/rbac-namespaced/role.yaml, generated from config/rbac/role.yaml)
// and the namespace user's edit Role on Lethe's kinds, with no rule for
// Secrets, each bound in namespace ns.
func grant(t *testing.T, ns string) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(env.Root, "config", "rbac-namespaced", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var role rbacv1.Role
	if _, doc, ok := strings.Cut(string(raw), "---\n"); !ok || yaml.Unmarshal([]byte(doc), &role) != nil || role.Kind != "Role" {
		t.Fatalf("config/rbac-namespaced/role.yaml is not one Role after its header: %v", err)
	}
	raw, err = os.ReadFile(filepath.Join(env.Root, "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cluster rbacv1.ClusterRole
	if err := yaml.Unmarshal([]byte(strings.TrimPrefix(string(raw), "---\n")), &cluster); err != nil || cluster.Kind != "ClusterRole" {
		t.Fatalf("config/rbac/role.yaml is not one ClusterRole: %v", err)
	}
	if !reflect.DeepEqual(cluster.Rules, role.Rules) {
		t.Fatalf("config/rbac-namespaced/role.yaml is stale: run make manifests")
	}
	role.Namespace = ns
	create(t, env.Client, &role)
	create(t, env.Client, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "lethe-manager"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: managerUser}},
	})
	create(t, env.Client, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "lethe-edit"},
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{"retention.lethe.dev"}, Resources: lethePlural,
			Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"},
		}},
	})
	create(t, env.Client, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "lethe-edit"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "lethe-edit"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: userName}},
	})
}

func create(t *testing.T, c client.Client, o client.Object) {
	t.Helper()
	if err := c.Create(ctx(), o); err != nil {
		t.Fatalf("creating %T %s: %v", o, o.GetName(), err)
	}
}

// userClient is a client for a user without system:masters.
func userClient(t *testing.T, name string) (client.Client, *rest.Config) {
	t.Helper()
	cfg, err := env.UserConfig(name)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c, cfg
}

// startManager runs the manager binary as the user bound to the namespaced
// Role, watching only ns, its log into managerLogs and its metrics on a
// loopback port.
func startManager(t *testing.T, cfg *rest.Config, ns string) *managerproc.Manager {
	t.Helper()
	return testharness.Manager(t, managerproc.Options{
		Config:     cfg,
		Namespaces: []string{ns},
		DigestKey:  []byte("hostile-digest-key-0123456789abcdef"),
		Args: []string{
			"--datastore-concurrency=4", "--dataset-concurrency=4", "--legalhold-concurrency=2", "--policy-concurrency=2",
			"--deletionrequest-concurrency=8", "--purgejob-concurrency=4",
		},
		Log:     &managerLogs,
		Metrics: true,
	})
}

func pgConn(t *testing.T, st stores) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(ctx(), st.pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(ctx()) })
	return conn
}
