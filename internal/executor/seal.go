package executor

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/engine"
)

// Bounds of the keys sealed by one job: at most MaxSealedKeys keys per
// operation, at most MaxSealedBytes compressed (sized for a Secret, which
// holds at most 1 MiB).
const (
	MaxSealedKeys  = 100_000
	MaxSealedBytes = 900 << 10
)

// SealStore keeps the keys a job sealed before its first change, for as
// long as the job needs them (the controller: a Secret owned by the job
// from its creation; identities of a kind, see docs/design.md §6).
type SealStore interface {
	// Save stores the sealed keys (opaque data). It replaces what an
	// earlier start of the same job saved without recording it (a crash
	// between sealing and the checkpoint: nothing was changed since).
	Save(ctx context.Context, data []byte) error
	// Load returns what Save stored. Keys that are gone, or that this job
	// did not store, are a *outcome.StallError: the job cannot resume
	// exactly without them.
	Load(ctx context.Context) ([]byte, error)
}

// seal reads, before the first change, the primary keys of the records
// each subject operation selects, and keeps them in Seals, recording how
// many in status (SealedKeys). Execution then also selects by these keys
// (engine.Inputs.Sealed), so a job resumed after a failure still reaches
// records whose link to the subject (a parent's identity field, an
// anonymized linking row) it has already changed. Stores without primary
// keys (no datastore.Sealer) seal nothing.
func (r *Run) seal(ctx context.Context) error {
	sealer, ok := r.Driver.(datastore.Sealer)
	if !ok {
		return nil
	}
	keys := map[string][][]string{}
	var n int64
	for _, s := range r.Steps {
		if s.BlockedBy != "" || len(s.Op.Subjects) == 0 {
			continue
		}
		k, err := sealer.Keys(ctx, s.Op, MaxSealedKeys)
		if err != nil {
			return err
		}
		if len(k) > 0 {
			keys[s.Op.Collection.Name] = append(keys[s.Op.Collection.Name], k...)
			n += int64(len(k))
		}
	}
	if n == 0 {
		return nil
	}
	data, err := encodeSealed(keys)
	if err != nil {
		return err
	}
	if len(data) > MaxSealedBytes {
		return fmt.Errorf("%w: the keys of the records to erase take %d KiB compressed, more than a Secret holds; erase fewer subjects per job", engine.ErrInvalid, len(data)>>10)
	}
	if err := r.Seals.Save(ctx, data); err != nil {
		return err
	}
	r.Job.Status.SealedKeys = n
	return nil
}

// Sealed reads the keys a job sealed before its first change, by collection
// name, for engine.Inputs.Sealed: nil when it sealed none.
func Sealed(ctx context.Context, status *retentionv1.PurgeJobStatus, store SealStore) (map[string][][]string, error) {
	if status.SealedKeys == 0 {
		return nil, nil
	}
	data, err := store.Load(ctx)
	if err != nil {
		return nil, err
	}
	return decodeSealed(data)
}

// encodeSealed is the stored form of sealed keys: gzip-compressed JSON,
// collection → key tuples.
func encodeSealed(keys map[string][][]string) ([]byte, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if err := json.NewEncoder(zw).Encode(keys); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// decodeSealed reads what encodeSealed wrote; anything else is invalid.
func decodeSealed(data []byte) (map[string][][]string, error) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: sealed keys: %w", engine.ErrInvalid, err)
	}
	var keys map[string][][]string
	if err := json.NewDecoder(io.LimitReader(zr, 64<<20)).Decode(&keys); err != nil {
		return nil, fmt.Errorf("%w: sealed keys: %w", engine.ErrInvalid, err)
	}
	return keys, nil
}
