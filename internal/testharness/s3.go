package testharness

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/servers"
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

var s3Lazy lazy[*servers.S3]

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
	if err := srv.CreateBucket(ctx, name, versioned); err != nil {
		tb.Fatalf("testharness: S3: creating bucket %s: %v", name, err)
	}
	return S3Server{
		Endpoint: srv.Endpoint, Region: srv.Region,
		AccessKeyID: srv.AccessKeyID, SecretAccessKey: srv.SecretAccessKey, Bucket: name,
	}
}

func startS3() (*servers.S3, error) {
	ctx := context.Background()
	if ep := os.Getenv("LETHE_TEST_S3_ENDPOINT"); ep != "" {
		region := os.Getenv("LETHE_TEST_S3_REGION")
		if region == "" {
			region = "us-east-1"
		}
		srv, err := servers.ConnectS3(ctx, ep, region)
		if err != nil {
			return nil, fmtEnvErr("LETHE_TEST_S3_ENDPOINT", err)
		}
		return srv, nil
	}
	g, err := theGroup()
	if err != nil {
		return nil, err
	}
	srv, err := g.StartS3(ctx, servers.S3Options{Building: func(version string) {
		fmt.Fprintf(os.Stderr, "testharness: building versitygw %s with hack/build-versitygw.sh (first time only, about a minute)...\n", version)
	}})
	return srv, orSet(err, "LETHE_TEST_S3_ENDPOINT")
}
