package controllers_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	goredis "github.com/redis/go-redis/v9"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/controllers"
	"github.com/lethe-dev/lethe/internal/testharness"
)

// One DeletionRequest spans four Datasets on PostgreSQL, MariaDB, Redis and
// S3 and completes with a single receipt; every store is read back.
func TestDeletionRequestAcrossFourStores(t *testing.T) {
	startManager(t, controllers.Options{})
	ctx := context.Background()
	ns := namespace(t)
	subject, other := "u-4711", "u-47"

	// PostgreSQL: accounts.
	pgConn := func() *pgx.Conn {
		pg := postgresStore(t, ns, "pg")
		c, err := pgx.Connect(ctx, pg.DSN)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(ctx) })
		return c
	}()
	mustExec(t, pgConn, `CREATE TABLE accounts (id text PRIMARY KEY, email text)`)
	mustExec(t, pgConn, `INSERT INTO accounts VALUES ($1, 'a@example.org'), ($2, 'b@example.org')`, subject, other)

	// MariaDB: comments.
	my := testharness.MariaDB(t)
	db, err := sql.Open("mysql", my.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{
		`CREATE TABLE comments (id BIGINT PRIMARY KEY, user_id VARCHAR(32) NOT NULL, body TEXT)`,
		`INSERT INTO comments VALUES (1, '` + subject + `', 'hi'), (2, '` + subject + `', 'yo'), (3, '` + other + `', 'hey')`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "my-credentials", Labels: marked()}, StringData: map[string]string{"username": my.User, "password": my.Password}})
	create(t, &retentionv1.DataStore{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "my"}, Spec: retentionv1.DataStoreSpec{
		Type: retentionv1.DataStoreMySQL, Host: my.Host, Port: ptr.To(int32(my.Port)), Database: retentionv1.Identifier(my.Database),
		TLS: retentionv1.TLSDisable, CredentialsSecretRef: &retentionv1.SecretReference{Name: "my-credentials"}}})

	// Redis: sessions.
	rc := redisSessions(t, ns, subject, other)

	// S3: uploads.
	s3s := testharness.S3(t)
	mc, err := minio.New(hostOf(s3s.Endpoint), &minio.Options{Creds: credentials.NewStaticV4(s3s.AccessKeyID, s3s.SecretAccessKey, ""), Region: s3s.Region})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"uploads/" + subject + "/a.jpg", "uploads/" + subject + "/b.jpg", "uploads/" + other + "/a.jpg"} {
		if _, err := mc.PutObject(ctx, s3s.Bucket, k, bytes.NewReader([]byte("x")), 1, minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "s3-credentials", Labels: marked()}, StringData: map[string]string{"accessKeyID": s3s.AccessKeyID, "secretAccessKey": s3s.SecretAccessKey}})
	create(t, &retentionv1.DataStore{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "s3"}, Spec: retentionv1.DataStoreSpec{
		Type: retentionv1.DataStoreS3, TLS: retentionv1.TLSDisable, CredentialsSecretRef: &retentionv1.SecretReference{Name: "s3-credentials"},
		S3: &retentionv1.S3Settings{Endpoint: s3s.Endpoint, Region: s3s.Region, Bucket: s3s.Bucket, ForcePathStyle: true}}})

	userID := []retentionv1.IdentityField{{Type: "user_id"}}
	datasets := []*retentionv1.Dataset{
		{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "accounts"}, Spec: retentionv1.DatasetSpec{DataStoreRef: retentionv1.LocalObjectReference{Name: "pg"},
			Collections: []retentionv1.Collection{{Name: "accounts", Identities: []retentionv1.IdentityField{{Type: "user_id", Field: "id"}}}}}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "comments"}, Spec: retentionv1.DatasetSpec{DataStoreRef: retentionv1.LocalObjectReference{Name: "my"},
			Collections: []retentionv1.Collection{{Name: "comments", Identities: []retentionv1.IdentityField{{Type: "user_id", Field: "user_id"}}}}}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "sessions"}, Spec: retentionv1.DatasetSpec{DataStoreRef: retentionv1.LocalObjectReference{Name: "redis"},
			Collections: []retentionv1.Collection{{Name: "sessions", KeyPattern: "session:{user_id}:*", TimestampField: "ts", Identities: userID}}}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "uploads"}, Spec: retentionv1.DatasetSpec{DataStoreRef: retentionv1.LocalObjectReference{Name: "s3"},
			Collections: []retentionv1.Collection{{Name: "uploads", Prefix: "uploads/{user_id}/", Identities: userID}}}},
	}
	for _, ds := range datasets {
		create(t, ds)
	}
	create(t, &retentionv1.DeletionRequest{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "everywhere"}, Spec: retentionv1.DeletionRequestSpec{
		Reason: retentionv1.ReasonSubjectRequest, Subject: retentionv1.Subject{Identities: []retentionv1.SubjectIdentity{{Type: "user_id", Value: subject}}}}})
	dr := waitRequest(t, ns, "everywhere", retentionv1.RequestCompleted)

	// One receipt, four stores.
	rows := map[string]int64{}
	for _, e := range dr.Status.Receipt.Entries {
		rows[e.Dataset+"/"+e.Collection] = e.Rows
	}
	want := map[string]int64{"accounts/accounts": 1, "comments/comments": 2, "sessions/sessions": 2, "uploads/uploads": 2}
	if fmt.Sprint(rows) != fmt.Sprint(want) || !dr.Status.Receipt.Verified || len(dr.Status.PurgeJobs) != 4 {
		t.Errorf("receipt %v (verified %v, jobs %v), want %v", rows, dr.Status.Receipt.Verified, dr.Status.PurgeJobs, want)
	}
	// Each entry says when its own store's PurgeJob finished, not when the
	// request did (after verification).
	for _, e := range dr.Status.Receipt.Entries {
		var job *retentionv1.PurgeJob
		for _, name := range dr.Status.PurgeJobs {
			var j retentionv1.PurgeJob
			if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &j); err == nil && string(j.Spec.DatasetRef.Name) == e.Dataset {
				job = &j
			}
		}
		if job == nil || job.Status.CompletionTime == nil || e.CompletedAt == nil || !e.CompletedAt.Equal(job.Status.CompletionTime) {
			t.Errorf("receipt entry %s/%s completed at %v, want its PurgeJob's completion time", e.Dataset, e.Collection, e.CompletedAt)
		}
		if e.CompletedAt != nil && e.CompletedAt.After(dr.Status.Receipt.CompletedAt.Time) {
			t.Errorf("receipt entry %s/%s completed after the receipt", e.Dataset, e.Collection)
		}
	}
	// Read every store back: the subject is gone, the other subject is not.
	if n := count(t, pgConn, `SELECT count(*) FROM accounts WHERE id = $1`, subject); n != 0 {
		t.Errorf("PostgreSQL: %d rows left", n)
	}
	if n := count(t, pgConn, `SELECT count(*) FROM accounts WHERE id = $1`, other); n != 1 {
		t.Errorf("PostgreSQL: the other subject lost rows")
	}
	var mine, theirs int
	_ = db.QueryRow(`SELECT count(*) FROM comments WHERE user_id = ?`, subject).Scan(&mine)
	_ = db.QueryRow(`SELECT count(*) FROM comments WHERE user_id = ?`, other).Scan(&theirs)
	if mine != 0 || theirs != 1 {
		t.Errorf("MariaDB: subject %d rows, other %d rows", mine, theirs)
	}
	keys, _ := rc.Keys(ctx, "session:*").Result()
	if len(keys) != 1 || keys[0] != "session:"+other+":a" {
		t.Errorf("Redis keys left: %v", keys)
	}
	var objects []string
	for o := range mc.ListObjects(ctx, s3s.Bucket, minio.ListObjectsOptions{Recursive: true}) {
		objects = append(objects, o.Key)
	}
	if len(objects) != 1 || objects[0] != "uploads/"+other+"/a.jpg" {
		t.Errorf("S3 objects left: %v", objects)
	}
}

func hostOf(endpoint string) string {
	for _, p := range []string{"http://", "https://"} {
		if len(endpoint) > len(p) && endpoint[:len(p)] == p {
			return endpoint[len(p):]
		}
	}
	return endpoint
}

// redisSessions starts a throwaway Redis with the hashes session:<subject>:a,
// session:<subject>:b and session:<other>:a, and creates DataStore "redis"
// and its Secret for it; it returns a client to read the keys back.
func redisSessions(t *testing.T, ns, subject, other string) *goredis.Client {
	t.Helper()
	ctx := context.Background()
	rs := testharness.Redis(t)
	rc := goredis.NewClient(&goredis.Options{Addr: rs.Addr, DB: rs.DB, Password: rs.Password})
	t.Cleanup(func() { rc.Close() })
	for _, k := range []string{"session:" + subject + ":a", "session:" + subject + ":b", "session:" + other + ":a"} {
		if err := rc.HSet(ctx, k, "ts", time.Now().Unix()).Err(); err != nil {
			t.Fatal(err)
		}
	}
	redisSecret := map[string]string{}
	if rs.Password != "" {
		redisSecret["password"] = rs.Password
	}
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "redis-credentials", Labels: marked()}, StringData: redisSecret})
	create(t, &retentionv1.DataStore{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "redis"}, Spec: retentionv1.DataStoreSpec{
		Type: retentionv1.DataStoreRedis, Host: rs.Host, Port: ptr.To(int32(rs.Port)), RedisDB: ptr.To(int32(rs.DB)), TLS: retentionv1.TLSDisable,
		CredentialsSecretRef: &retentionv1.SecretReference{Name: "redis-credentials"}}})
	return rc
}
