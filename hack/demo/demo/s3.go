package demo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"

	"github.com/minio/minio-go/v7"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/lethe-dev/lethe/internal/servers"
)

const s3Bucket = "shop-uploads"

// s3Store holds the shop's uploads in an S3 bucket (versitygw with its posix
// backend): profile pictures avatars/<user_id>/… and identity-card photos
// kyc/<user_id>/… . S3 dates an object only by LastModified, which is the
// upload time, so freshly loaded objects cannot be past any retention
// period: the bucket has no RetentionPolicy here and shows erasure on
// request.
type s3Store struct {
	srv *servers.S3
	c   *minio.Client
}

func (s *s3Store) name() string   { return "S3" }
func (s *s3Store) policy() string { return "" }
func (s *s3Store) close()         {}

func (s *s3Store) describe() string {
	return fmt.Sprintf("S3 (versitygw %s, posix backend) up on %s, bucket %s", s.srv.Version, s.srv.Endpoint, s3Bucket)
}

func (s *s3Store) explore() string {
	return fmt.Sprintf("AWS_ACCESS_KEY_ID=%s AWS_SECRET_ACCESS_KEY=%s aws --endpoint-url %s s3 ls --recursive s3://%s/   # S3 (AWS CLI)",
		s.srv.AccessKeyID, s.srv.SecretAccessKey, s.srv.Endpoint, s3Bucket)
}

func (s *s3Store) manifests() ([]*unstructured.Unstructured, error) {
	return manifest("s3.yaml", map[string]any{
		"Endpoint": s.srv.Endpoint, "Region": s.srv.Region, "Bucket": s3Bucket, "AccessKey": s.srv.AccessKeyID, "SecretKey": s.srv.SecretAccessKey,
	})
}

// start starts versitygw (internal/servers), which hack/build-versitygw.sh
// builds from Go modules the first time, cached like the control plane.
func (s *s3Store) start(ctx context.Context, r *run) error {
	srv, err := r.srv.StartS3(ctx, servers.S3Options{RepoRoot: r.root, Building: func(string) {
		r.p.step("Building versitygw (the S3 server) from Go modules with hack/build-versitygw.sh (first time only, about a minute)")
	}})
	if err != nil {
		return err
	}
	s.srv, s.c = srv, srv.Client()
	return nil
}

// load uploads a profile picture for every 40th user and identity-card
// photos for every 80th (versitygw takes a few milliseconds per upload),
// with sixteen uploads in flight.
func (s *s3Store) load(ctx context.Context, users int) (int64, error) {
	if err := s.c.MakeBucket(ctx, s3Bucket, minio.MakeBucketOptions{Region: s.srv.Region}); err != nil {
		return 0, err
	}
	var keys []string
	for i := 1; i <= users; i++ {
		uid := int64(100000 + i)
		if i%40 == 0 || uid == MinorUserID || uid == AdaUserID {
			keys = append(keys, fmt.Sprintf("avatars/%d/avatar.jpg", uid))
		}
		if i%80 == 0 || uid == MinorUserID || uid == AdaUserID {
			keys = append(keys, fmt.Sprintf("kyc/%d/id-card-front.jpg", uid), fmt.Sprintf("kyc/%d/id-card-back.jpg", uid))
		}
	}
	work := make(chan string)
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(w), 11))
			body := make([]byte, 2048)
			for key := range work {
				for i := range body {
					body[i] = byte(rnd.UintN(256))
				}
				copy(body, "\xff\xd8\xff\xe0JFIF") // looks like a JPEG to file(1)
				_, err := s.c.PutObject(ctx, s3Bucket, key, bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{ContentType: "image/jpeg"})
				if err != nil {
					mu.Lock()
					firstErr = errors.Join(firstErr, err)
					mu.Unlock()
				}
			}
		}()
	}
	for _, k := range keys {
		if ctx.Err() != nil {
			break
		}
		work <- k
	}
	close(work)
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return int64(len(keys)), firstErr
}

func (s *s3Store) count(ctx context.Context, snap *Snapshot, subs []subject) error {
	for _, c := range []struct{ table, prefix string }{{"avatars", "avatars/"}, {"kyc_documents", "kyc/"}} {
		n, err := s.countPrefix(ctx, c.prefix)
		if err != nil {
			return err
		}
		snap.Tables = append(snap.Tables, TableCount{Store: s.name(), Table: c.table, Rows: n, Anonymized: -1})
	}
	return addSubjectRows(snap, subs, s.name(), func(sub subject) (map[string]int64, error) {
		a, err := s.countPrefix(ctx, fmt.Sprintf("avatars/%d/", sub.userID))
		if err != nil {
			return nil, err
		}
		k, err := s.countPrefix(ctx, fmt.Sprintf("kyc/%d/", sub.userID))
		return map[string]int64{"avatars": a, "kyc_documents": k}, err
	})
}

func (s *s3Store) countPrefix(ctx context.Context, prefix string) (int64, error) {
	var n int64
	for o := range s.c.ListObjects(ctx, s3Bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			return n, o.Err
		}
		n++
	}
	return n, nil
}
