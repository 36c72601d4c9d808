package mysql

import (
	"strings"
	"unicode/utf8"
)

// maxIdentLength is MySQL's limit for table, column and partition names.
const maxIdentLength = 64

// quote quotes an identifier with backticks, doubling any backtick inside,
// so that whatever the name holds it stays one identifier.
func quote(name string) string {
	return "`" + strings.ReplaceAll(name, "`", "``") + "`"
}

// checkIdent rejects names the server could never hold, before they are
// looked up or quoted: empty, too long, not UTF-8, holding NUL or characters
// outside the Basic Multilingual Plane, or ending in a space. Anything else,
// backticks and semicolons included, is a possible (quoted) name.
func checkIdent(op, what, name string) error {
	switch {
	case name == "":
		return invalid(op, "%s name is empty", what)
	case !utf8.ValidString(name):
		return invalid(op, "%s name is not valid UTF-8", what)
	case utf8.RuneCountInString(name) > maxIdentLength:
		return invalid(op, "%s name is longer than %d characters", what, maxIdentLength)
	case strings.HasSuffix(name, " "):
		return invalid(op, "%s name ends with a space", what)
	}
	for _, r := range name {
		if r == 0 || r > 0xFFFF {
			return invalid(op, "%s name holds a character MySQL does not allow in identifiers", what)
		}
	}
	return nil
}
