// Package engine turns a PurgeJob's declared operations into concrete driver
// operations: it resolves collections against the Dataset, anonymization
// strategies (with the HMAC key), the subjects' identities, the reference path
// from a collection to the identities, and the legal holds in force.
package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/connect"
	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/erasure"
	"github.com/lethe-dev/lethe/internal/holds"
	"github.com/lethe-dev/lethe/internal/mask"
)

// ErrInvalid marks a job that cannot run as specified; retrying cannot help.
// It is erasure.ErrInvalid, so planning errors classify the same way.
var ErrInvalid = erasure.ErrInvalid

// ErrNoPath: a collection holds none of the subject's identity types and no
// owning reference leads to one that does (it is not the subject's data).
var ErrNoPath = erasure.ErrNoPath

// Step is one resolved operation.
type Step struct {
	Op datastore.Operation
	// BlockedBy names a LegalHold that keeps the whole collection; the step
	// is skipped while it is set.
	BlockedBy string
	// HeldBy names holds that exclude some subjects.
	HeldBy []string
}

// Collection finds a collection of a Dataset by name.
func Collection(ds *retentionv1.Dataset, name retentionv1.Identifier) (*retentionv1.Collection, bool) {
	return erasure.Collection(ds, name)
}

// ToDriver converts an API collection into the driver's view.
func ToDriver(storeType retentionv1.DataStoreType, c *retentionv1.Collection) (datastore.Collection, error) {
	out := datastore.Collection{
		Name:            string(c.Name),
		Schema:          string(c.Schema),
		Table:           string(c.Table),
		TimestampField:  string(c.TimestampField),
		TimestampSource: string(c.TimestampSource),
		IdentityFields:  map[string]string{},
	}
	for _, pk := range c.PrimaryKey {
		out.PrimaryKey = append(out.PrimaryKey, string(pk))
	}
	switch storeType {
	case retentionv1.DataStorePostgreSQL, retentionv1.DataStoreMySQL:
		if c.KeyPattern != "" || c.Prefix != "" {
			return out, fmt.Errorf("%w: collection %s: a %s store holds tables, not key patterns or prefixes", ErrInvalid, c.Name, storeType)
		}
		if out.Table == "" {
			out.Table = string(c.Name)
		}
		if out.Schema == "" && storeType == retentionv1.DataStorePostgreSQL {
			out.Schema = "public"
		}
		if out.Schema != "" && storeType == retentionv1.DataStoreMySQL {
			return out, fmt.Errorf("%w: collection %s: schema is not used by MySQL (the DataStore's database is); remove it", ErrInvalid, c.Name)
		}
		if SystemSchema(out.Schema) {
			return out, fmt.Errorf("%w: collection %s: schema %s is a system schema; Lethe never works on system catalogs", ErrInvalid, c.Name, out.Schema)
		}
		if out.TimestampSource == "" {
			out.TimestampSource = string(retentionv1.TimestampColumn)
		}
	case retentionv1.DataStoreRedis:
		if c.KeyPattern == "" {
			return out, fmt.Errorf("%w: collection %s: a Redis collection needs keyPattern", ErrInvalid, c.Name)
		}
		out.Pattern = string(c.KeyPattern)
		if out.TimestampSource == "" {
			out.TimestampSource = string(retentionv1.TimestampHashField)
		}
	case retentionv1.DataStoreS3:
		if c.Prefix == "" {
			return out, fmt.Errorf("%w: collection %s: an S3 collection needs prefix", ErrInvalid, c.Name)
		}
		out.Pattern = string(c.Prefix)
		if out.TimestampSource == "" {
			out.TimestampSource = string(retentionv1.TimestampLastModified)
		}
	}
	if c.TimestampTimeZone != "" {
		loc, err := time.LoadLocation(string(c.TimestampTimeZone))
		if err != nil {
			return out, fmt.Errorf("%w: collection %s: timestampTimeZone: %w", ErrInvalid, c.Name, err)
		}
		out.TimestampLocation = loc
	}
	for _, id := range c.Identities {
		out.IdentityFields[string(id.Type)] = string(id.Field)
	}
	return out, nil
}

// SystemSchema reports whether a schema (or MySQL database) name is a
// system catalog: PostgreSQL's pg_catalog, pg_toast, pg_temp_N and every
// other pg_ name (reserved by the server), information_schema, and MySQL's
// mysql, sys and performance_schema. Compared case-insensitively.
func SystemSchema(name string) bool {
	n := strings.ToLower(name)
	return strings.HasPrefix(n, "pg_") || slices.Contains([]string{"information_schema", "mysql", "sys", "performance_schema"}, n)
}

// Strategy converts an API anonymization into a mask strategy; key is the
// Dataset's HMAC key (nil when it has none).
func Strategy(a retentionv1.Anonymization, key []byte) mask.Strategy {
	s := mask.Strategy{Kind: mask.Kind(a.Strategy), Granularity: string(a.Granularity), Key: key}
	if a.Replacement != nil {
		s.Replacement = *a.Replacement
	}
	if a.KeepFirst != nil {
		s.KeepFirst = int(*a.KeepFirst)
	}
	if a.KeepLast != nil {
		s.KeepLast = int(*a.KeepLast)
	}
	return s
}

// Inputs are what Resolve reads besides the job.
type Inputs struct {
	Reader    client.Reader // uncached, for Secrets
	Dataset   *retentionv1.Dataset
	StoreType retentionv1.DataStoreType
	Holds     []retentionv1.LegalHold
	Now       time.Time
	// Sealed are the primary keys sealed before the job's first change, by
	// collection name (see Seal); nil before sealing.
	Sealed map[string][][]string
}

// Resolve builds the steps of a job, in spec order.
func Resolve(ctx context.Context, job *retentionv1.PurgeJob, in Inputs) ([]Step, error) {
	var hmacKey []byte
	var subjects map[string][]string
	steps := make([]Step, 0, len(job.Spec.Operations))
	for _, op := range job.Spec.Operations {
		c, ok := Collection(in.Dataset, op.Collection)
		if !ok {
			return nil, fmt.Errorf("%w: collection %s is not in Dataset %s", ErrInvalid, op.Collection, in.Dataset.Name)
		}
		dc, err := ToDriver(in.StoreType, c)
		if err != nil {
			return nil, err
		}
		d := datastore.Operation{
			Collection: dc,
			Delete:     op.Action == retentionv1.ActionDelete,
			BatchSize:  int(job.Spec.BatchSize),
		}
		if d.BatchSize <= 0 {
			// Adaptive: the executor sets each batch's size (Run.Sizer);
			// 1000 is the size without one.
			d.BatchSize = 1000
		}
		if op.ByAge {
			cutoffAt := job.Spec.Cutoff
			if op.Cutoff != nil {
				cutoffAt = op.Cutoff
			}
			if cutoffAt == nil {
				return nil, fmt.Errorf("%w: operation on %s selects byAge but has no cutoff", ErrInvalid, op.Collection)
			}
			if c.TimestampField == "" && !ageFromMetadata(dc.TimestampSource) {
				return nil, fmt.Errorf("%w: collection %s has no timestampField, so it cannot be purged by age", ErrInvalid, op.Collection)
			}
			cutoff := cutoffAt.UTC()
			d.Cutoff = &cutoff
		}
		if op.BySubject {
			if subjects == nil {
				if subjects, err = readSubjects(ctx, in.Reader, job); err != nil {
					return nil, err
				}
			}
			d.Subjects = subjects
			if d.Paths, err = SubjectPaths(in.Dataset, in.StoreType, c, subjects); err != nil {
				return nil, err
			}
			d.Keys = in.Sealed[string(op.Collection)]
		}
		if err := CheckFields(c, op.Fields); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		for _, f := range op.Fields {
			if f.Strategy == retentionv1.StrategyHMAC && hmacKey == nil {
				if hmacKey, err = readHMACKey(ctx, in.Reader, in.Dataset); err != nil {
					return nil, err
				}
			}
			d.Fields = append(d.Fields, datastore.FieldMask{Field: string(f.Name), Strategy: Strategy(f.Anonymization, hmacKey)})
		}
		effect, err := holds.For(ctx, in.Reader, in.Holds, in.Dataset.Name, c, in.Now)
		if errors.Is(err, holds.ErrInvalidSubject) {
			return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		if err != nil {
			return nil, err
		}
		d.Held = effect.Held
		if len(d.Held) > 0 {
			// Held subjects are excluded through every reference that links
			// the collection to a held identity (order_items → orders.user_id),
			// owning or not: a hold keeps too much rather than too little.
			if d.HeldPaths, err = HeldPaths(in.Dataset, in.StoreType, c, d.Held); err != nil {
				return nil, err
			}
		}
		steps = append(steps, Step{Op: d, BlockedBy: effect.Blocked, HeldBy: effect.By})
	}
	return steps, nil
}

func ageFromMetadata(source string) bool {
	switch retentionv1.TimestampSource(source) {
	case retentionv1.TimestampLastModified, retentionv1.TimestampIdleTime, retentionv1.TimestampStreamID, retentionv1.TimestampSortedSetScore:
		return true
	}
	return false
}

// ErrSubjectsSecretMissing: the subjects Secret of a PurgeJob does not exist
// (it matches connect.ErrSecretNotFound too). Lethe creates a coalesced
// PurgeJob before its Secret, which it owns, so for a moment after creation
// this is expected.
var ErrSubjectsSecretMissing = errors.New("subjects Secret missing")

type subjectsMissing struct{ err error }

func (e subjectsMissing) Error() string   { return e.err.Error() }
func (e subjectsMissing) Unwrap() []error { return []error{e.err, ErrSubjectsSecretMissing} }

func readSubjects(ctx context.Context, r client.Reader, job *retentionv1.PurgeJob) (map[string][]string, error) {
	if job.Spec.SubjectsSecretRef == nil {
		return nil, fmt.Errorf("%w: operations bySubject need subjectsSecretRef", ErrInvalid)
	}
	secret, err := connect.GetSecret(ctx, r, job.Namespace, job.Spec.SubjectsSecretRef.Name)
	if errors.Is(err, connect.ErrSecretNotFound) {
		return nil, subjectsMissing{err}
	}
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for k, v := range secret.Data {
		if vs := holds.SplitValues(string(v)); len(vs) > 0 {
			out[k] = vs
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: subjects Secret %s holds no identities", ErrInvalid, job.Spec.SubjectsSecretRef.Name)
	}
	return out, nil
}

func readHMACKey(ctx context.Context, r client.Reader, ds *retentionv1.Dataset) ([]byte, error) {
	if ds.Spec.HMACKeySecretRef == nil {
		return nil, fmt.Errorf("%w: strategy HMAC needs hmacKeySecretRef on Dataset %s", ErrInvalid, ds.Name)
	}
	key, err := connect.SecretKey(ctx, r, ds.Namespace, *ds.Spec.HMACKeySecretRef)
	if err != nil {
		return nil, err
	}
	if len(key) < 16 {
		return nil, fmt.Errorf("%w: the HMAC key of Dataset %s is shorter than 16 bytes", ErrInvalid, ds.Name)
	}
	return key, nil
}
