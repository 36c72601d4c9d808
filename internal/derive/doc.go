// Package derive finds a subject's further identities in the stores.
//
// A SQL collection that holds two identity types (users with user_id and
// email) links them, so a request naming only the email also reaches what is
// keyed by the user_id (a Redis pattern session:{user_id}:*, a table with
// only a user_id column). Derivation runs in rounds (email → user_id →
// account_id…, at most maxRounds): each round, every type not yet known that
// a linking collection holds beside a known type becomes known, from those
// types via that collection. A type is derived once, in the first round that
// reaches it; known types are never widened, so a shared phone number cannot
// pull in another person's user_id. Each lookup is read-only and keeps only
// values every record of which is the subject's (datastore.IdentityLookup),
// never a placeholder that anonymization writes (a redacted email stands in
// the records of many people).
//
// DeletionRequests and LegalHolds derive with the same code (Stores.Derive)
// and different bounds:
//
//   - a request erases what it derives, so an identity shared by more than
//     MaxRequestValues subjects stops it (RequestBounds, reason
//     DerivationLimit): erasing them all would erase other people;
//   - a hold never stops at a shared identity: holding more keeps data, it
//     never deletes any. It keeps up to MaxHoldValues values per type and
//     maxHoldBytes in all, and says so (reason DerivationLimit) when there
//     were more (HoldBounds).
//
// The derived values are personal data. A request's live only in its own
// Secret <request>-subject (owned by the request, removed with it and by
// ttlSecondsAfterFinished); a hold's in its Secret <hold>-derived (created
// owned by the hold, removed with it and when the hold ends; Hold keeps it
// current). Neither ever reaches status, events, logs or metrics: annotations
// on the Secrets and the IdentitiesDerived conditions name types, counts and
// the collections read, never values.
package derive
