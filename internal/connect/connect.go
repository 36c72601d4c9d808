// Package connect turns a DataStore and its Secret into an open driver, and
// keeps one driver per DataStore so controllers share connection pools.
//
// Secrets are read with an uncached reader, one Get per referenced Secret:
// Lethe never lists or watches Secrets cluster-wide, and credentials never
// appear in logs, events or status.
package connect

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/schedule"
)

// Errors of referenced Secrets. Each needs a human, so the referrer goes
// Stalled with the reason SecretReason gives. ErrSecretNotMarked and
// ErrInvalidSecret also match ErrSecretNotFound (the Secret cannot be used),
// so a caller that only knows that error still stalls.
var (
	// ErrSecretNotFound: a referenced Secret or key does not exist.
	ErrSecretNotFound = errors.New("secret not found")
	// ErrSecretNotMarked: the Secret exists but does not carry the label
	// retention.lethe.dev/secret=true, so Lethe does not use it.
	ErrSecretNotMarked = &secretError{"secret not marked for Lethe"}
	// ErrInvalidSecret: the Secret lacks what the referrer needs (a SQL
	// DataStore's username and password, an S3 key pair, a PEM CA bundle).
	ErrInvalidSecret = &secretError{"invalid secret"}
)

type secretError struct{ msg string }

func (e *secretError) Error() string { return e.msg }

func (e *secretError) Is(target error) bool { return target == e || target == ErrSecretNotFound }

// SecretReason is the condition reason for an error of a referenced Secret:
// SecretNotMarked, InvalidSecret or SecretNotFound ("" for other errors).
func SecretReason(err error) string {
	switch {
	case errors.Is(err, ErrSecretNotMarked):
		return retentionv1.ReasonSecretNotMarked
	case errors.Is(err, ErrInvalidSecret):
		return retentionv1.ReasonInvalidSecret
	case errors.Is(err, ErrSecretNotFound):
		return retentionv1.ReasonSecretNotFound
	}
	return ""
}

// Opener opens a driver for a resolved configuration.
type Opener func(ctx context.Context, cfg datastore.Config) (datastore.Driver, error)

// Pool caches one open driver per DataStore, reopened when the DataStore's
// generation or its Secret's content version changes.
type Pool struct {
	Reader client.Reader // uncached reader for Secrets (mgr.GetAPIReader())
	Open   Opener
	// Network is the manager's network policy: every connection of every
	// driver goes through it. nil means datastore.DefaultNetworkPolicy.
	Network *datastore.NetworkPolicy

	mu      sync.Mutex
	drivers map[types.NamespacedName]entry
}

type entry struct {
	version  string // DataStore UID/generation + Secret resourceVersion
	driver   datastore.Driver
	resolved time.Time
}

// revalidate is how long a driver is handed out without re-reading its
// Secret: rotated credentials are picked up within this time, and hot paths
// (one Get per request and batch) cost no API read.
const revalidate = 30 * time.Second

// Get returns the driver for a DataStore, opening it if needed.
func (p *Pool) Get(ctx context.Context, ds *retentionv1.DataStore) (datastore.Driver, error) {
	key := types.NamespacedName{Namespace: ds.Namespace, Name: ds.Name}
	prefix := fmt.Sprintf("%s/%d/", ds.UID, ds.Generation)
	p.mu.Lock()
	if e, ok := p.drivers[key]; ok && strings.HasPrefix(e.version, prefix) && time.Since(e.resolved) < revalidate {
		p.mu.Unlock()
		return e.driver, nil
	}
	p.mu.Unlock()

	cfg, secretVersion, err := Resolve(ctx, p.Reader, ds)
	if err != nil {
		return nil, err
	}
	cfg.Network = p.Network
	version := prefix + secretVersion

	p.mu.Lock()
	defer p.mu.Unlock()
	if e, ok := p.drivers[key]; ok {
		if e.version == version {
			e.resolved = time.Now()
			p.drivers[key] = e
			return e.driver, nil
		}
		_ = e.driver.Close()
		delete(p.drivers, key)
	}
	d, err := p.Open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if p.drivers == nil {
		p.drivers = map[types.NamespacedName]entry{}
	}
	p.drivers[key] = entry{version: version, driver: d, resolved: time.Now()}
	return d, nil
}

// Forget closes and drops the driver of a DataStore (deleted or changed).
func (p *Pool) Forget(key types.NamespacedName) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e, ok := p.drivers[key]; ok {
		_ = e.driver.Close()
		delete(p.drivers, key)
	}
}

// Close closes every driver.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, e := range p.drivers {
		_ = e.driver.Close()
		delete(p.drivers, k)
	}
}

var defaultPorts = map[retentionv1.DataStoreType]int{
	retentionv1.DataStorePostgreSQL: 5432,
	retentionv1.DataStoreMySQL:      3306,
	retentionv1.DataStoreRedis:      6379,
}

// Resolve builds the driver configuration of a DataStore, reading its
// credentials Secret. It returns the Secret's resourceVersion ("" without
// one) so callers notice rotated credentials.
func Resolve(ctx context.Context, r client.Reader, ds *retentionv1.DataStore) (datastore.Config, string, error) {
	s := ds.Spec
	cfg := datastore.Config{
		Type:           string(s.Type),
		Host:           s.Host,
		Port:           defaultPorts[s.Type],
		Database:       string(s.Database),
		TLS:            string(s.TLS), // "" is VerifyFull (datastore.Config.TLSMode)
		MaxConnections: int(s.Limits.MaxConnections),
	}
	if s.Port != nil {
		cfg.Port = int(*s.Port)
	}
	if s.RedisDB != nil {
		cfg.RedisDB = int(*s.RedisDB)
	}
	if cfg.MaxConnections <= 0 {
		cfg.MaxConnections = 4
	}
	var err error
	if cfg.StatementTimeout, err = timeoutOr(s.Limits.StatementTimeout, "5s"); err != nil {
		return cfg, "", fmt.Errorf("%w: limits.statementTimeout: %w", datastore.ErrSettings, err)
	}
	if cfg.LockTimeout, err = timeoutOr(s.Limits.LockTimeout, "1s"); err != nil {
		return cfg, "", fmt.Errorf("%w: limits.lockTimeout: %w", datastore.ErrSettings, err)
	}
	if s.S3 != nil {
		cfg.S3Endpoint = s.S3.Endpoint
		cfg.S3Region = s.S3.Region
		cfg.S3Bucket = s.S3.Bucket
		cfg.S3ForcePathStyle = s.S3.ForcePathStyle
		if cfg.S3Region == "" {
			cfg.S3Region = "us-east-1"
		}
	}
	version := ""
	if ref := s.CABundleSecretRef; ref != nil {
		secret, err := GetSecret(ctx, r, ds.Namespace, ref.Name)
		if err != nil {
			return cfg, "", err
		}
		pem, ok := secret.Data[ref.Key]
		if !ok {
			return cfg, "", fmt.Errorf("%w: Secret %q has no key %q", ErrInvalidSecret, ref.Name, ref.Key)
		}
		if !x509.NewCertPool().AppendCertsFromPEM(pem) {
			return cfg, "", fmt.Errorf("%w: key %q of Secret %q holds no PEM certificate", ErrInvalidSecret, ref.Key, ref.Name)
		}
		cfg.CABundle = pem
		version = "ca" + secret.ResourceVersion + "/"
	}
	sql := s.Type == retentionv1.DataStorePostgreSQL || s.Type == retentionv1.DataStoreMySQL
	if s.CredentialsSecretRef == nil {
		// Without credentials a SQL client would log in as the manager's
		// own operating-system user (and read its password files).
		if sql {
			return cfg, "", fmt.Errorf("%w: a %s DataStore needs credentialsSecretRef (keys username and password)", ErrInvalidSecret, s.Type)
		}
		return cfg, version, nil
	}
	secret, err := GetSecret(ctx, r, ds.Namespace, s.CredentialsSecretRef.Name)
	if err != nil {
		return cfg, "", err
	}
	version += secret.ResourceVersion
	switch {
	case s.Type == retentionv1.DataStoreS3:
		cfg.S3AccessKeyID = string(secret.Data["accessKeyID"])
		cfg.S3SecretAccessKey = string(secret.Data["secretAccessKey"])
		if cfg.S3AccessKeyID == "" || cfg.S3SecretAccessKey == "" {
			return cfg, "", fmt.Errorf("%w: Secret %q needs both keys accessKeyID and secretAccessKey", ErrInvalidSecret, secret.Name)
		}
	default:
		cfg.Username = string(secret.Data["username"])
		cfg.Password = string(secret.Data["password"])
		if sql && (cfg.Username == "" || cfg.Password == "") {
			return cfg, "", fmt.Errorf("%w: Secret %q needs both keys username and password", ErrInvalidSecret, secret.Name)
		}
	}
	return cfg, version, nil
}

// GetSecret reads one Secret of a namespace that is marked for Lethe: it
// carries the label retention.lethe.dev/secret=true
// (retentionv1.LabelSecretConsent). Whoever can write a Lethe object in a
// namespace can name any Secret there; the label is the Secret owner's
// consent that Lethe may use it, so a user who cannot read a Secret cannot
// make Lethe use (and leak) it either. A missing Secret is ErrSecretNotFound
// and an unmarked one ErrSecretNotMarked, naming the Secret (names are not
// personal data); nothing read from a Secret is ever part of an error.
func GetSecret(ctx context.Context, r client.Reader, namespace, name string) (*corev1.Secret, error) {
	var secret corev1.Secret
	if err := r.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, &secret); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("%w: Secret %q in namespace %q", ErrSecretNotFound, name, namespace)
		}
		return nil, fmt.Errorf("reading Secret %q: %w", name, err)
	}
	if secret.Labels[retentionv1.LabelSecretConsent] != "true" {
		return nil, fmt.Errorf("%w: Secret %q lacks the label %s=\"true\" that allows Lethe to use it", ErrSecretNotMarked, name, retentionv1.LabelSecretConsent)
	}
	return &secret, nil
}

// SecretKey reads one key of a Secret.
func SecretKey(ctx context.Context, r client.Reader, namespace string, ref retentionv1.SecretKeySelector) ([]byte, error) {
	secret, err := GetSecret(ctx, r, namespace, ref.Name)
	if err != nil {
		return nil, err
	}
	v, ok := secret.Data[ref.Key]
	if !ok {
		return nil, fmt.Errorf("%w: Secret %q has no key %q", ErrSecretNotFound, ref.Name, ref.Key)
	}
	return v, nil
}

func timeoutOr(t retentionv1.Timeout, def string) (time.Duration, error) {
	if t == "" {
		t = retentionv1.Timeout(def)
	}
	return schedule.ParseTimeout(string(t))
}
