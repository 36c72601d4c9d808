package datastore

import "context"

// IdentityLookup is implemented by drivers that can read one identity type
// of a subject from the records matching others: a users table holding both
// user_id and email turns an email into the user_id that keys sessions
// elsewhere. The SQL drivers implement it; Redis and S3 do not (a key
// pattern holds the identity in the key, not beside another one).
//
// The values returned are personal data: callers must not log them, and
// drivers never put them in errors.
type IdentityLookup interface {
	// Lookup returns the distinct non-null values of the collection's
	// identity field for type want, from the records matching any of the
	// identities in from (type → values, matched through the collection's
	// own identity fields), at most limit of them. One read-only statement.
	//
	// A value is returned only if every record of the collection holding it
	// matches from: a value also found beside another subject's identity, or
	// beside none (an anonymized record, a shared placeholder such as a
	// redacted email), is not this subject's identity, and erasing by it
	// would erase other people.
	Lookup(ctx context.Context, c Collection, from map[string][]string, want string, limit int) ([]string, error)
}
