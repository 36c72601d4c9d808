package servers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3 is a running S3-compatible server and root credentials for it. Use
// path-style addressing (minio-go does for an IP endpoint; with the AWS SDK
// set UsePathStyle).
type S3 struct {
	Endpoint        string // http://127.0.0.1:port
	Region          string
	AccessKeyID     string
	SecretAccessKey string
	Version         string // versitygw's version; empty for ConnectS3

	client *minio.Client
}

// Client is a minio-go client with the root credentials.
func (s *S3) Client() *minio.Client { return s.client }

// CreateBucket creates an empty bucket, with versioning enabled when asked.
func (s *S3) CreateBucket(ctx context.Context, name string, versioned bool) error {
	if err := s.client.MakeBucket(ctx, name, minio.MakeBucketOptions{Region: s.Region}); err != nil {
		return err
	}
	if versioned {
		if err := s.client.EnableVersioning(ctx, name); err != nil {
			return fmt.Errorf("enabling versioning: %w", err)
		}
	}
	return nil
}

// S3Options configure a started versitygw.
type S3Options struct {
	// RepoRoot is the repository whose hack/build-versitygw.sh builds
	// versitygw; empty: RepoRoot().
	RepoRoot string
	// Building, when set, is called before versitygw is built (the first
	// time on a machine, about a minute), with the version.
	Building func(version string)
}

func newS3Client(endpoint, region, access, secret string) (*minio.Client, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return nil, err
	}
	return minio.New(u.Host, &minio.Options{
		Creds:        credentials.NewStaticV4(access, secret, ""),
		Secure:       u.Scheme == "https",
		Region:       region,
		BucketLookup: minio.BucketLookupPath,
	})
}

// StartS3 starts versitygw with its posix backend (bucket versioning
// supported), building it first if needed (versitygwBinary).
func (g *Group) StartS3(ctx context.Context, o S3Options) (*S3, error) {
	dir, err := g.serverDir("versitygw")
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "versitygw.log")
	bin, version, err := versitygwBinary(ctx, o, logPath)
	if err != nil {
		return nil, err
	}
	root := filepath.Join(dir, "root")
	versions := filepath.Join(dir, "versions")
	for _, d := range []string{root, versions} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return nil, err
		}
	}
	backend := []string{"posix", "--versioning-dir", versions}
	// The posix backend keeps object metadata in user xattrs; where the
	// file system has none (tmpfs before Linux 6.6), use a sidecar dir.
	if err := syscall.Setxattr(root, "user.lethe.test", []byte("1"), 0); err != nil {
		meta := filepath.Join(dir, "meta")
		if err := os.Mkdir(meta, 0o755); err != nil {
			return nil, err
		}
		backend = append(backend, "--sidecar", meta)
	} else {
		_ = syscall.Removexattr(root, "user.lethe.test")
	}
	backend = append(backend, root)

	const region = "us-east-1"
	access, secret := "lethe"+randomHex(6), randomHex(20)
	return startWithRetry(func(port int) (*S3, error) {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		args := append([]string{
			"--port", addr,
			"--region", region,
			"--keep-alive",
			"--quiet",
		}, backend...)
		p, err := g.start(procSpec{
			name: "versitygw", path: bin, args: args, dir: dir, logPath: logPath,
			// Credentials through the environment keep them out of ps.
			env: append(cleanEnv("VGW_", "ROOT_ACCESS_KEY", "ROOT_SECRET"),
				"ROOT_ACCESS_KEY="+access, "ROOT_SECRET_KEY="+secret),
			stopSig: syscall.SIGKILL,
		})
		if err != nil {
			return nil, err
		}
		endpoint := "http://" + addr
		client, err := newS3Client(endpoint, region, access, secret)
		if err != nil {
			g.unregisterAndStop(p)
			return nil, err
		}
		err = g.waitReady(ctx, p, func(ctx context.Context) error {
			_, err := client.ListBuckets(ctx)
			return err
		})
		if err != nil {
			return nil, err
		}
		return &S3{Endpoint: endpoint, Region: region, AccessKeyID: access, SecretAccessKey: secret, Version: version, client: client}, nil
	})
}

// ConnectS3 uses a server that already runs, given
// http://ACCESS_KEY:SECRET_KEY@host:port and its region.
func ConnectS3(ctx context.Context, endpoint, region string) (*S3, error) {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, errors.New("the endpoint must look like http://ACCESS_KEY:SECRET_KEY@host:port")
	}
	access := u.User.Username()
	secret, _ := u.User.Password()
	if access == "" || secret == "" {
		return nil, errors.New("the endpoint carries no credentials; use http://ACCESS_KEY:SECRET_KEY@host:port")
	}
	ep := u.Scheme + "://" + u.Host
	client, err := newS3Client(ep, region, access, secret)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := client.ListBuckets(ctx); err != nil {
		return nil, err
	}
	return &S3{Endpoint: ep, Region: region, AccessKeyID: access, SecretAccessKey: secret, client: client}, nil
}

// versionOf names the version of a versitygw binary in the build cache
// (…/versitygw-<version>/versitygw); "" for another one.
func versionOf(bin string) string {
	real, err := filepath.EvalSymlinks(bin)
	if err != nil {
		return ""
	}
	v, ok := strings.CutPrefix(filepath.Base(filepath.Dir(real)), "versitygw-")
	if !ok {
		return ""
	}
	return v
}
