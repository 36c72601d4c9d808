package demo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

const (
	s3Bucket = "shop-uploads"
	s3Region = "us-east-1"
)

// s3Store holds the shop's uploads in an S3 bucket (versitygw with its posix
// backend): profile pictures avatars/<user_id>/… and identity-card photos
// kyc/<user_id>/… . S3 dates an object only by LastModified, which is the
// upload time, so freshly loaded objects cannot be past any retention
// period: the bucket has no RetentionPolicy here and shows erasure on
// request.
type s3Store struct {
	endpoint, access, secret, version string
	c                                 *minio.Client
}

func (s *s3Store) name() string   { return "S3" }
func (s *s3Store) policy() string { return "" }
func (s *s3Store) close()         {}

func (s *s3Store) describe() string {
	return fmt.Sprintf("S3 (versitygw %s, posix backend) up on %s, bucket %s", s.version, s.endpoint, s3Bucket)
}

func (s *s3Store) explore() string {
	return fmt.Sprintf("AWS_ACCESS_KEY_ID=%s AWS_SECRET_ACCESS_KEY=%s aws --endpoint-url %s s3 ls --recursive s3://%s/   # S3 (AWS CLI)",
		s.access, s.secret, s.endpoint, s3Bucket)
}

func (s *s3Store) manifests() ([]*unstructured.Unstructured, error) {
	return manifest("s3.yaml", map[string]any{
		"Endpoint": s.endpoint, "Region": s3Region, "Bucket": s3Bucket, "AccessKey": s.access, "SecretKey": s.secret,
	})
}

// start builds versitygw once (hack/build-versitygw.sh, cached like the
// control plane) and starts it on a free port.
func (s *s3Store) start(ctx context.Context, r *run) error {
	script := filepath.Join(r.root, "hack", "build-versitygw.sh")
	if _, err := os.Stat(script); err != nil {
		return errMissing{"hack/build-versitygw.sh", "a checkout that has it"}
	}
	cmd := exec.CommandContext(ctx, script)
	cmd.Dir = r.root
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// The script only links the cached binary, unless this is the first
	// time: then say why it takes a while.
	building := time.AfterFunc(3*time.Second, func() {
		r.p.step("Building versitygw (the S3 server) from Go modules with hack/build-versitygw.sh (first time only, about a minute)")
	})
	err := cmd.Run()
	building.Stop()
	if err != nil {
		return fmt.Errorf("hack/build-versitygw.sh: %w\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	bin := strings.TrimSpace(lines[len(lines)-1])
	if !isExecutable(bin) {
		bin = filepath.Join(r.root, "bin", "versitygw")
	}
	if real, err := filepath.EvalSymlinks(bin); err == nil {
		s.version = strings.TrimPrefix(filepath.Base(filepath.Dir(real)), "versitygw-")
	}

	dir, err := r.srv.serverDir("versitygw")
	if err != nil {
		return err
	}
	root, versions := filepath.Join(dir, "root"), filepath.Join(dir, "versions")
	for _, d := range []string{root, versions} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
	}
	backend := []string{"posix", "--versioning-dir", versions}
	// The posix backend keeps metadata in user xattrs; without them (tmpfs
	// before Linux 6.6) it uses a sidecar directory.
	if err := syscall.Setxattr(root, "user.lethe.demo", []byte("1"), 0); err != nil {
		meta := filepath.Join(dir, "meta")
		if err := os.Mkdir(meta, 0o755); err != nil {
			return err
		}
		backend = append(backend, "--sidecar", meta)
	} else {
		_ = syscall.Removexattr(root, "user.lethe.demo")
	}
	backend = append(backend, root)
	s.access, s.secret = "lethe"+randomHex(6), randomHex(20)
	logPath := filepath.Join(dir, "versitygw.log")
	_, err = retryPorts(func(port int) (struct{}, error) {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		p, err := r.srv.start(spec{
			name: "versitygw", path: bin, dir: dir, logPath: logPath, stopSig: syscall.SIGKILL,
			args: append([]string{"--port", addr, "--region", s3Region, "--quiet"}, backend...),
			// Credentials through the environment keep them out of ps.
			env: append(cleanEnv("VGW_", "ROOT_ACCESS_KEY", "ROOT_SECRET"), "ROOT_ACCESS_KEY="+s.access, "ROOT_SECRET_KEY="+s.secret),
		})
		if err != nil {
			return struct{}{}, err
		}
		s.endpoint = "http://" + addr
		s.c, err = minio.New(addr, &minio.Options{
			Creds: credentials.NewStaticV4(s.access, s.secret, ""), Region: s3Region, BucketLookup: minio.BucketLookupPath,
		})
		if err != nil {
			return struct{}{}, err
		}
		return struct{}{}, p.waitReady(ctx, func(ctx context.Context) error {
			_, err := s.c.ListBuckets(ctx)
			return err
		})
	})
	return err
}

// load uploads a profile picture for every 40th user and identity-card
// photos for every 80th (versitygw takes a few milliseconds per upload),
// with sixteen uploads in flight.
func (s *s3Store) load(ctx context.Context, users int) (int64, error) {
	if err := s.c.MakeBucket(ctx, s3Bucket, minio.MakeBucketOptions{Region: s3Region}); err != nil {
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
