// Package redis is Lethe's datastore.Driver for Redis (single node; a
// logical database selected by Config.RedisDB). Open it with New.
//
// # Collections
//
// A collection is a key pattern with identity placeholders, such as
// session:{user_id}:* (Collection.Pattern). Literal text is matched as is,
// '*' matches any run of characters, and a placeholder matches one identity
// value. To make "whose key is this" a question with one answer, a pattern
// must not have a '*' before a placeholder, and every placeholder must be
// followed by a literal character (its delimiter) or end the pattern; a
// placeholder's value is the text up to its delimiter (or the rest of the
// key). So session:{user_id}:* with user 1 is the keys session:1:… and never
// session:12:… . Patterns that break these rules are ErrInvalid.
//
// # Records
//
// For TimestampSource SortedSetScore the records are sorted-set members, for
// StreamID stream entries; otherwise (HashField, IdleTime, or no timestamp)
// the records are whole keys. Count, Total and Batch.Affected all count
// records in that unit, so percentage limits compare like with like.
//
// # Selection
//
// An Operation selects by age (Cutoff), by subject (Subjects), or both:
//
//   - HashField: keys that are hashes whose TimestampField holds Unix seconds
//     (an integer or decimal) or an RFC 3339 time strictly before the cutoff.
//     Keys that are not hashes, lack the field or hold something else cannot
//     be dated and are never selected by age (Describe reports key types).
//     Whole Unix seconds are read, compared and unlinked in one script; other
//     forms are parsed by Lethe and unlinked by a script only if the field
//     still holds the value read, so a key the application refreshes in
//     between survives.
//   - SortedSetScore: members whose score (Unix seconds) is strictly less
//     than the cutoff are trimmed (ZREMRANGEBYSCORE, or ZREMRANGEBYRANK on
//     the lowest ranks in steps of BatchSize members so a huge set never
//     blocks the server in one command); the key stays while members remain.
//   - StreamID: entries whose ID time is before the cutoff are trimmed with
//     exact XTRIM MINID (the cutoff in milliseconds, rounded up).
//   - IdleTime: a key's last access is taken to be now − OBJECT IDLETIME,
//     where now is the server's TIME at the start of the batch. A key is
//     selected when that is before the cutoff: when its idle time in whole
//     seconds, times 1000, is strictly greater than now − cutoff in
//     milliseconds. The test and the UNLINK run in one script. Idle time is
//     relative to now, so unlike the other sources the selected set grows
//     while a job runs; its resolution is one second, and servers with an LFU
//     maxmemory-policy do not track it (ErrInvalid). Lethe's own commands
//     (SCAN, OBJECT, TYPE) do not count as accesses.
//   - Subjects: each identity value is substituted for its placeholder (glob
//     metacharacters * ? [ ] \ escaped) and the matching keys are erased
//     whole, whatever their type. A value must be non-empty and must not
//     contain its placeholder's delimiter (ErrInvalid otherwise: its keys
//     could not be told apart from someone else's). Many subjects are
//     coalesced: one SCAN over the pattern with the placeholders as '*', each
//     key's values parsed back and looked up in a set; a single value is
//     matched by the server (SCAN MATCH with the value). When the pattern has
//     no '*' and one placeholder type, the keys are computed and no SCAN is
//     needed.
//
// Held identities (Operation.Held) are read back out of every key before it
// is touched: a key whose placeholder value is held is never deleted, trimmed
// or anonymized. A held value that contains its delimiter cannot come out of
// that parse, so such values are also matched the conservative way (could
// this key be read as having the held value?), and a hold wins any ambiguity.
//
// # Anonymization
//
// Anonymize rewrites the Operation's fields of hash keys with
// mask.Strategy.Apply as Text values without a length limit; a Null result
// deletes the field. The rewrite is a compare-and-set script: if the
// application changed a field between the read and the write, the key is read
// again (up to a few times). A selected key that is not a hash, or a
// SortedSetScore or StreamID collection, is ErrInvalid, found before anything
// in the batch is written.
//
// # Batches and cursors
//
// The cursor is the SCAN cursor ("s:<n>"), or, when keys are computed from
// the subjects, the index of the next value ("k:<n>"); neither holds a key
// or an identity. A batch is SCAN calls with COUNT min(BatchSize, 1000),
// growing to 10,000 while few keys match, until about BatchSize keys are
// selected (it can overshoot by part of one SCAN reply, since a reply cannot
// be split and resumed), the cursor wraps to 0, or 64 calls found too few;
// then one pipeline deletes them (UNLINK with up to 1,000 keys per command,
// or compare-and-unlink scripts of up to 1,000 keys). Never KEYS. A trim
// removes at most BatchSize members per command and repeats until the key
// is done, so one batch can remove more members than BatchSize.
//
// SCAN guarantees that every key present for the whole iteration is returned
// at least once, but it may return a key more than once (when the keyspace is
// resized between calls). Counting stays exact anyway: UNLINK returns 1 only
// for a key it removed, and a trim counts what ZREMRANGEBYSCORE / XTRIM
// removed, so a key returned twice is counted once. Count deduplicates the keys
// it has seen (a 64-bit hash per key, about 16 bytes of memory each).
// Anonymization is the one exception: a hash returned twice in different
// batches is rewritten and counted twice (harmless for Null, Fixed, Redact and
// PartialMask, which are idempotent, not for HMAC).
//
// On an error Execute returns the records already affected in the failing
// batch with the cursor it was given, so the engine can add them and retry
// the same batch.
//
// Errors are classified into datastore.ErrUnavailable (network, timeouts,
// LOADING, BUSY, OOM…), ErrAuthentication (NOAUTH, WRONGPASS, NOPERM),
// ErrNotFound (no such logical database) and ErrInvalid, wrapped with %w.
// Messages never contain keys or identity values.
package redis
