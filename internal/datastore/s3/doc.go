// Package s3 is Lethe's datastore.Driver for one bucket of S3-compatible
// storage (github.com/minio/minio-go/v7). Open it with New.
//
// # Collections and records
//
// A collection is an object prefix with identity placeholders, such as
// uploads/{user_id}/ (Collection.Pattern). A placeholder's value is one path
// segment: the text up to the next '/' or the placeholder's delimiter (the
// literal character after it), so uploads/{user_id}/ and uploads/{user_id}
// both read uploads/12/a.jpg as user 12 and never as user 1.
//
// Records are objects; in a bucket that has (or had) versioning they are
// object versions, delete markers not counted. Count, Total and
// Batch.Affected use the same unit.
//
// # Selection
//
//   - Age: objects (versions) whose LastModified is strictly before the
//     cutoff. LastModified is the only timestamp S3 has; TimestampSource must
//     be empty or LastModified. In a versioned bucket, every version and
//     delete marker older than the cutoff goes, so an overwritten object's old
//     content goes too while its newer version stays.
//   - Subjects: each identity value is substituted into the prefix. Values
//     must be safe path segments: non-empty, without '/', not . and without
//     "..", without control characters, and without the placeholder's
//     delimiter; anything else is ErrInvalid, never silently encoded. When
//     the values fill the prefix's first placeholder, each value's prefix is
//     listed on its own (uploads/1/ , uploads/12/ …, sorted); otherwise the
//     static part of the prefix is listed once for all subjects and each key's
//     values are parsed back and looked up (many subjects cost one listing).
//   - Legal holds: the placeholder values are parsed out of every key and an
//     object whose value is held is never deleted; held values that the parse
//     cannot produce are matched the conservative way (could this key be the
//     held subject's?), so a hold wins any ambiguity.
//
// Anonymization is ErrInvalid: an object is opaque bytes, there are no
// fields to rewrite.
//
// # Deletion
//
// Selected objects are deleted with DeleteObjects, up to 1,000 keys per
// request and four requests in flight (a batch of 1,000 goes as four
// requests of 250: servers work through one request key by key). In a bucket whose
// versioning is Enabled or Suspended (checked at every batch), the listing
// includes versions (ListObjectVersions) and each version and delete marker
// is deleted by version ID, so nothing stays retrievable; a key's versions
// are always handled in one batch. Should versioning be turned on between the
// check and the delete, the server answers with a delete marker instead of a
// deletion; that is reported as a failure, and the retry sees the versions.
//
// Affected counts what the server confirmed deleted. Keys it refused, or did
// not answer for, are reported in the error by count and S3 error code only:
// keys contain identity values, so they are never put in errors (nor are
// request URLs, whose query holds the listing prefix).
//
// # Cursors
//
// A batch lists from the cursor until BatchSize entries are selected (or ten
// times that many were listed), then deletes them. Per-value listings run
// eight at a time; a batch takes whole listings while they fit and leaves the
// next for the next batch. So a batch never exceeds BatchSize, except that
// a key's versions are never split across batches. Deleted objects disappear
// from later listings, so the cursor is the last listed key that is still
// there (StartAfter / key-marker), and stays where it was when a
// batch deleted everything it listed. It is written "<range>:<suffix>",
// where the range is the index of the listing (one per subject value in
// per-value listings) and the suffix is the key without the listing's prefix:
// a subject's cursor never carries their identity value. Cursors of
// whole-collection listings (age-based retention) do carry another object's
// key, which may hold someone's identity value.
//
// On an error Execute returns what it already deleted with the cursor it was
// given, so the engine can add it and retry the same batch.
//
// Errors are classified into datastore.ErrUnavailable (network, 5xx,
// SlowDown), ErrAuthentication (AccessDenied, bad keys, clock skew),
// ErrNotFound (NoSuchBucket) and ErrInvalid, wrapped with %w.
package s3
