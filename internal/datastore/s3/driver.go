package s3

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/lethe-dev/lethe/internal/datastore"
)

// Driver is the S3 datastore.Driver for one bucket. It is safe for
// concurrent use.
type Driver struct {
	client    *minio.Client
	transport *http.Transport
	bucket    string
	server    *atomic.Value // the last Server response header seen (string)
}

var _ datastore.Driver = (*Driver)(nil)

// New returns a driver for cfg; it does not contact the server (Probe does).
// It uses S3Endpoint (an http or https URL; empty means AWS), S3Region,
// S3Bucket, S3AccessKeyID, S3SecretAccessKey (both empty: anonymous),
// S3ForcePathStyle, TLS (VerifyFull, the default: https verified against
// CABundle or the system's roots; Require: https without verifying the
// certificate; Disable: an http:// endpoint),
// MaxConnections (most connections open at once; unlimited when 0; a batch
// uses up to eight for listings and four for DeleteObjects) and
// StatementTimeout (how long to wait for a response's headers, default 60s).
func New(_ context.Context, cfg datastore.Config) (*Driver, error) {
	if cfg.S3Bucket == "" {
		return nil, fmt.Errorf("%w: s3: no bucket", datastore.ErrSettings)
	}
	endpoint, secure := "s3.amazonaws.com", true
	if cfg.S3Endpoint != "" {
		u, err := url.Parse(cfg.S3Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("%w: s3: endpoint must be an http or https URL", datastore.ErrSettings)
		}
		if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
			return nil, fmt.Errorf("%w: s3: endpoint must have no path, query or credentials", datastore.ErrSettings)
		}
		endpoint, secure = u.Host, u.Scheme == "https"
	}
	// Requests are signed with the secret key: they go in clear or to an
	// unverified server only when the DataStore says so.
	if secure == (cfg.TLSMode() == datastore.TLSDisable) {
		if secure {
			return nil, fmt.Errorf("%w: s3: tls Disable needs an http:// endpoint", datastore.ErrSettings)
		}
		return nil, fmt.Errorf("%w: s3: an http:// endpoint needs tls Disable (TLS %s needs https)", datastore.ErrSettings, cfg.TLSMode())
	}
	tr, err := minio.DefaultTransport(secure)
	if err != nil {
		return nil, fmt.Errorf("%w: s3: %w", datastore.ErrInvalid, err)
	}
	// Every connection goes through the manager's network policy (a
	// redirect to another host too); TLS still verifies each request's
	// host. Through an HTTP proxy the connection goes to the proxy, so the
	// request's own host is checked before the proxy is used.
	policy := cfg.NetworkPolicy()
	tr.DialContext = policy.DialContext
	if proxy := tr.Proxy; proxy != nil {
		tr.Proxy = func(req *http.Request) (*url.URL, error) {
			u, err := proxy(req)
			if err != nil || u == nil {
				return u, err
			}
			port, _ := strconv.Atoi(req.URL.Port())
			if port == 0 {
				port = map[bool]int{true: 443, false: 80}[req.URL.Scheme == "https"]
			}
			if _, err := policy.Resolve(req.Context(), req.URL.Hostname(), port); err != nil {
				return nil, err
			}
			return u, nil
		}
	}
	if secure {
		// No fixed server name: the transport verifies each request's own
		// host (a virtual-hosted bucket is bucket.endpoint).
		if tr.TLSClientConfig, err = cfg.ClientTLS(""); err != nil {
			return nil, fmt.Errorf("s3: %w", err)
		}
	}
	tr.MaxIdleConnsPerHost = 16
	if cfg.MaxConnections > 0 {
		tr.MaxConnsPerHost = cfg.MaxConnections
	}
	tr.ResponseHeaderTimeout = 60 * time.Second
	if cfg.StatementTimeout > 0 {
		tr.ResponseHeaderTimeout = cfg.StatementTimeout
	}
	server := &atomic.Value{}
	lookup := minio.BucketLookupAuto
	if cfg.S3ForcePathStyle {
		lookup = minio.BucketLookupPath
	}
	var creds *credentials.Credentials
	if cfg.S3AccessKeyID != "" || cfg.S3SecretAccessKey != "" {
		creds = credentials.NewStaticV4(cfg.S3AccessKeyID, cfg.S3SecretAccessKey, "")
	} else {
		creds = credentials.New(&credentials.Static{Value: credentials.Value{SignerType: credentials.SignatureAnonymous}})
	}
	client, err := minio.New(endpoint, &minio.Options{
		Creds:        creds,
		Secure:       secure,
		Region:       cfg.S3Region,
		BucketLookup: lookup,
		Transport:    serverRecorder{next: tr, server: server},
		MaxRetries:   3,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: s3: %w", datastore.ErrInvalid, err)
	}
	return &Driver{client: client, transport: tr, bucket: cfg.S3Bucket, server: server}, nil
}

// serverRecorder remembers the Server header of responses, for Probe.
type serverRecorder struct {
	next   http.RoundTripper
	server *atomic.Value
}

func (r serverRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.next.RoundTrip(req)
	if resp != nil {
		if s := resp.Header.Get("Server"); s != "" {
			r.server.Store(s)
		}
	}
	return resp, err
}

// Close releases idle connections.
func (d *Driver) Close() error {
	d.transport.CloseIdleConnections()
	return nil
}

// Probe checks that the bucket exists and the credentials are accepted. The
// version is the server's Server response header when it sends one (for
// example "AmazonS3" or "MinIO"), else "S3".
func (d *Driver) Probe(ctx context.Context) (datastore.ServerInfo, error) {
	ok, err := d.client.BucketExists(ctx, d.bucket)
	if err != nil {
		return datastore.ServerInfo{}, classify("probe", err)
	}
	if !ok {
		return datastore.ServerInfo{}, fmt.Errorf("s3: probe: bucket %s: %w", d.bucket, datastore.ErrNotFound)
	}
	v, _ := d.server.Load().(string)
	if v == "" {
		v = "S3"
	}
	return datastore.ServerInfo{Version: v}, nil
}

// Describe checks the bucket and the prefix and counts the objects under
// it: exactly when there are at most 10,000 (ten listing pages), otherwise
// EstimatedRows is that lower bound.
func (d *Driver) Describe(ctx context.Context, c datastore.Collection) (datastore.CollectionInfo, error) {
	p, err := parsePrefix(c.Pattern)
	if err != nil {
		return datastore.CollectionInfo{}, err
	}
	if c.TimestampSource != "" && c.TimestampSource != sourceLastModified {
		return datastore.CollectionInfo{}, fmt.Errorf("%w: s3: objects are dated by LastModified, not %s", datastore.ErrInvalid, c.TimestampSource)
	}
	ok, err := d.client.BucketExists(ctx, d.bucket)
	if err != nil {
		return datastore.CollectionInfo{}, classify("describe", err)
	}
	if !ok {
		return datastore.CollectionInfo{}, fmt.Errorf("s3: describe: bucket %s: %w", d.bucket, datastore.ErrNotFound)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var n, listed int64
	var vals []string
	for obj := range d.client.ListObjectsIter(ctx, d.bucket, minio.ListObjectsOptions{Prefix: p.static, Recursive: true, MaxKeys: 1000}) {
		if obj.Err != nil {
			return datastore.CollectionInfo{}, classify("describe: list", obj.Err)
		}
		if vals, ok = p.Values(obj.Key, vals); ok {
			n++
		}
		if listed++; listed == 10_000 {
			break
		}
	}
	return datastore.CollectionInfo{Columns: map[string]datastore.Column{}, EstimatedRows: n}, nil
}

// Total returns the records under the prefix: objects, or in a bucket that
// has (or had) versioning, object versions other than delete markers.
func (d *Driver) Total(ctx context.Context, c datastore.Collection) (int64, error) {
	pl, err := newPlan(datastore.Operation{Collection: c, Delete: true}, true)
	if err != nil {
		return 0, err
	}
	return d.count(ctx, pl)
}

// S3 error codes by class.
var (
	authCodes = map[string]bool{
		"AccessDenied": true, "InvalidAccessKeyId": true, "SignatureDoesNotMatch": true,
		"ExpiredToken": true, "InvalidToken": true, "TokenRefreshRequired": true,
		"AllAccessDisabled": true, "AccountProblem": true, "InvalidSecurity": true,
		"RequestTimeTooSkewed": true, "MissingSecurityHeader": true,
	}
	transientCodes = map[string]bool{
		"SlowDown": true, "ServiceUnavailable": true, "InternalError": true, "RequestTimeout": true,
		"OperationAborted": true, "XMinioServerNotInitialized": true, "503 SlowDown": true,
	}
)

// classify wraps err with one of the datastore errors. The URL of a failed
// request is dropped from the message: a listing's URL holds the prefix,
// and so an identity value.
func classify(what string, err error) error {
	if err == nil {
		return nil
	}
	if na := datastore.AsNotAllowed(err); na != nil {
		// Without the request's URL, which can hold a prefix.
		return fmt.Errorf("s3: %s: %w", what, na)
	}
	for _, known := range []error{datastore.ErrInvalid, datastore.ErrUnavailable, datastore.ErrAuthentication, datastore.ErrNotFound} {
		if errors.Is(err, known) {
			return fmt.Errorf("s3: %s: %w", what, err)
		}
	}
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = fmt.Errorf("%s request: %w", uerr.Op, uerr.Err)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("s3: %s: %w: %w", what, datastore.ErrUnavailable, err)
	}
	resp := minio.ToErrorResponse(err)
	kind := codeKind(resp.Code, resp.StatusCode)
	if resp.Code != "" {
		// Only the code and the server's generic message: ErrorResponse
		// also carries the key and the resource.
		err = fmt.Errorf("%s: %s", resp.Code, resp.Message)
	}
	return fmt.Errorf("s3: %s: %w: %w", what, kind, err)
}

func codeKind(code string, status int) error {
	switch {
	case code == "NoSuchBucket":
		return datastore.ErrNotFound
	case authCodes[code]:
		return datastore.ErrAuthentication
	case transientCodes[code]:
		return datastore.ErrUnavailable
	case code == "":
		return datastore.ErrUnavailable // no S3 answer: network, TLS, timeouts
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return datastore.ErrAuthentication
	case status >= 500 || status == http.StatusTooManyRequests:
		return datastore.ErrUnavailable
	}
	return datastore.ErrInvalid
}
