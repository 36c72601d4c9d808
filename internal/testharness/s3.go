package testharness

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3Server is a fresh, empty bucket on an S3-compatible server. Use
// path-style addressing (minio-go does for an IP endpoint; with the AWS SDK
// set UsePathStyle).
type S3Server struct {
	Endpoint        string // http://127.0.0.1:port
	Region          string
	AccessKeyID     string
	SecretAccessKey string
	Bucket          string
}

// s3Server is the S3 server of this test process.
type s3Server struct {
	endpoint, region, access, secret string
	client                           *minio.Client
}

var s3Lazy lazy[*s3Server]

// S3 returns a fresh bucket, versioning not enabled, on a throwaway versitygw
// (or on the server of LETHE_TEST_S3_ENDPOINT). The server starts on first
// use.
func S3(tb testing.TB) S3Server {
	tb.Helper()
	return s3Bucket(tb, false)
}

// S3Versioned returns a fresh bucket with versioning enabled.
func S3Versioned(tb testing.TB) S3Server {
	tb.Helper()
	return s3Bucket(tb, true)
}

func s3Bucket(tb testing.TB, versioned bool) S3Server {
	tb.Helper()
	requireMain(tb)
	srv := s3Lazy.get(tb, "S3 (versitygw)", startS3)

	name := uniqueName(tb, "lethe", '-', 63)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.client.MakeBucket(ctx, name, minio.MakeBucketOptions{Region: srv.region}); err != nil {
		tb.Fatalf("testharness: S3: creating bucket %s: %v", name, err)
	}
	if versioned {
		if err := srv.client.EnableVersioning(ctx, name); err != nil {
			tb.Fatalf("testharness: S3: enabling versioning on bucket %s: %v", name, err)
		}
	}
	return S3Server{
		Endpoint: srv.endpoint, Region: srv.region,
		AccessKeyID: srv.access, SecretAccessKey: srv.secret, Bucket: name,
	}
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

func startS3() (*s3Server, error) {
	if ep := os.Getenv("LETHE_TEST_S3_ENDPOINT"); ep != "" {
		return externalS3(ep)
	}
	dir, err := serverDir("versitygw")
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "versitygw.log")
	bin, err := versitygwBinary(logPath)
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
	return startWithRetry(func(port int) (*s3Server, error) {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		args := append([]string{
			"--port", addr,
			"--region", region,
			"--keep-alive",
			"--quiet",
		}, backend...)
		p, err := startProcess(procSpec{
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
			return nil, err
		}
		err = p.waitReady(func(ctx context.Context) error {
			_, err := client.ListBuckets(ctx)
			return err
		})
		if err != nil {
			return nil, err
		}
		return &s3Server{endpoint: endpoint, region: region, access: access, secret: secret, client: client}, nil
	})
}

// externalS3 uses a developer's server: http://ACCESS:SECRET@host:port.
func externalS3(ep string) (*s3Server, error) {
	u, err := url.Parse(ep)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, errors.New("LETHE_TEST_S3_ENDPOINT must look like http://ACCESS_KEY:SECRET_KEY@host:port")
	}
	access := u.User.Username()
	secret, _ := u.User.Password()
	if access == "" || secret == "" {
		return nil, errors.New("LETHE_TEST_S3_ENDPOINT carries no credentials; use http://ACCESS_KEY:SECRET_KEY@host:port")
	}
	region := os.Getenv("LETHE_TEST_S3_REGION")
	if region == "" {
		region = "us-east-1"
	}
	endpoint := u.Scheme + "://" + u.Host
	client, err := newS3Client(endpoint, region, access, secret)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := client.ListBuckets(ctx); err != nil {
		return nil, fmt.Errorf("connecting to LETHE_TEST_S3_ENDPOINT: %w", err)
	}
	return &s3Server{endpoint: endpoint, region: region, access: access, secret: secret, client: client}, nil
}

// versitygwBinary returns bin/versitygw of the repository when it is the
// version pinned in hack/tools/versitygw/go.mod, else builds it with
// hack/build-versitygw.sh (once, cached; a file lock keeps parallel test
// processes from building it twice). Outside the repository it falls back to
// versitygw in PATH.
func versitygwBinary(logPath string) (string, error) {
	root, err := repoRoot()
	if err != nil {
		if p, lerr := exec.LookPath("versitygw"); lerr == nil {
			return p, nil
		}
		return "", fmt.Errorf("cannot locate the repository to build versitygw (%v) and there is no versitygw in PATH; "+
			"build it with hack/build-versitygw.sh (or set LETHE_TEST_S3_ENDPOINT)", err)
	}
	version, err := pinnedVersitygw(root)
	if err != nil {
		return "", err
	}
	link := filepath.Join(root, "bin", "versitygw")
	if ok := linkedVersion(link, version); ok {
		return link, nil
	}

	cacheDir, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	lockDir := filepath.Join(cacheDir, "lethe")
	if err := os.MkdirAll(lockDir, 0o755); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(filepath.Join(lockDir, ".testharness-versitygw.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("locking %s: %w", lock.Name(), err)
	}
	defer func() { _ = syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) }()
	// Another test process may have built it while we waited for the lock.
	if linkedVersion(link, version) {
		return link, nil
	}

	fmt.Fprintf(os.Stderr, "testharness: building versitygw %s with hack/build-versitygw.sh (first time only, about a minute)...\n", version)
	script := filepath.Join(root, "hack", "build-versitygw.sh")
	cmd := exec.Command(script)
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := runLogged("hack/build-versitygw.sh", cmd, logPath); err != nil {
		return "", fmt.Errorf("building versitygw (run %s to see why; it needs go and the module proxy): %w", script, err)
	}
	path := lastLine(out.String())
	if path == "" {
		path = link
	}
	if !isExecutable(path) {
		return "", fmt.Errorf("%s printed %q, which is not an executable", script, path)
	}
	return path, nil
}

// linkedVersion reports whether link resolves to an executable in the cache
// directory of version (…/versitygw-<version>/versitygw).
func linkedVersion(link, version string) bool {
	real, err := filepath.EvalSymlinks(link)
	if err != nil || !isExecutable(real) {
		return false
	}
	return filepath.Base(filepath.Dir(real)) == "versitygw-"+version
}

// pinnedVersitygw reads the versitygw version from the tools module.
func pinnedVersitygw(root string) (string, error) {
	gomod := filepath.Join(root, "hack", "tools", "versitygw", "go.mod")
	f, err := os.Open(gomod)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 0 && fields[0] == "require" {
			fields = fields[1:]
		}
		if len(fields) >= 2 && fields[0] == "github.com/versity/versitygw" {
			return fields[1], nil
		}
	}
	return "", fmt.Errorf("%s does not require github.com/versity/versitygw", gomod)
}

// repoRoot walks up from the working directory (the package directory under
// go test) to the go.mod of module github.com/lethe-dev/lethe.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil {
			for _, line := range strings.Split(string(b), "\n") {
				if f := strings.Fields(line); len(f) == 2 && f[0] == "module" && f[1] == "github.com/lethe-dev/lethe" {
					return dir, nil
				}
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod of github.com/lethe-dev/lethe above the working directory")
		}
		dir = parent
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
