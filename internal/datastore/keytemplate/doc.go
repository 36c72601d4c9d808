// Package keytemplate parses the key templates of the key-value stores:
// Redis key patterns such as session:{user_id}:* and S3 object prefixes
// such as uploads/{user_id}/. A template is literal text and {identity_type}
// placeholders; Values reads the placeholders' values back out of a key, so
// that "whose key is this" has exactly one answer. The rules that make the
// answer unique:
//
//   - a literal character separates a placeholder from the next placeholder
//     ({a}{b} is ambiguous: is 12 a=1, b=2 or a=12?); in a pattern, also
//     from a following '*' ({user_id}* cannot tell user 1 from user 12);
//   - a placeholder's value never contains its delimiter, the literal
//     character that follows it (for session:{user_id}:* the value ends at
//     the first ':' after "session:"); a placeholder at the very end takes
//     the rest of the key (a pattern) or runs to the next '/' (a prefix);
//   - in a prefix a value never contains '/' either: uploads/{user_id}/ and
//     uploads/{user_id} both read uploads/12/a.jpg as user 12, never user 1;
//   - in a pattern no '*' comes before a placeholder (in *:{user_id} the
//     wildcard and the value could share the characters between them);
//   - a placeholder that appears twice has the same value in both places
//     (otherwise the key is not in the collection).
//
// A key is in a pattern's collection when the whole key matches, '*' in the
// text after the last placeholder matching any run of characters; it is in
// a prefix's collection when it starts with the prefix.
//
// Check refuses subject values that the unique reading could not produce
// (they contain a delimiter) or, for prefixes, that are not one safe path
// segment. A held value may be such a value: HeldGlob then matches every key
// that could be read as holding it, and a hold wins any ambiguity
// (Selection).
package keytemplate
