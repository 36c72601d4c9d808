package datastore

import "context"

// IdentityScanner is implemented by drivers that can read the identity
// fields of every record of a collection, in batches: what a replay of the
// erasure ledger after a restore needs (controllers/erasurereplay_controller.go)
// to find the records of subjects erased since the backup was taken. The SQL
// drivers implement it; Redis and S3 do not (a replay reports their Datasets
// as not scanned, never as clean).
//
// The values returned are personal data: callers must not log them, keep
// them only in memory, and drivers never put them in errors. The cursor
// holds the last primary key of a page, which may be personal data too: a
// caller that stores it seals it (digest.Seal).
type IdentityScanner interface {
	// ScanIdentities reads the next page of at most limit records of the
	// collection in primary-key order, after cursor ("" to start): for each
	// record, identity type → the field's value as text (the same text
	// IdentityLookup returns, and an erasure binds), NULL fields left out;
	// a record whose identity fields are all NULL is left out too. One
	// read-only statement per call. Done is true when the page reached the
	// end of the collection.
	ScanIdentities(ctx context.Context, c Collection, cursor string, limit int) (IdentityPage, error)
}

// IdentityPage is one page of ScanIdentities.
type IdentityPage struct {
	// Records holds the identity values of the page's records (type →
	// value), NULL fields and all-NULL records left out.
	Records []map[string]string
	// Scanned is how many records the page read, all-NULL ones included.
	Scanned int
	// Cursor is where the next page starts.
	Cursor string
	// Done: the collection has no record after this page.
	Done bool
}

// MaxScanLimit bounds the records of one ScanIdentities page.
const MaxScanLimit = 10000
