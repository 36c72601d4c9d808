package s3

import (
	"fmt"
	"strings"

	"github.com/lethe-dev/lethe/internal/datastore"
)

// prefix is a parsed object prefix such as uploads/{user_id}/ : literals
// and placeholders. An object is in the collection when its key starts with
// the prefix, each placeholder read as one value.
//
// A placeholder's value is a non-empty run of characters up to the first '/'
// or the placeholder's delimiter (the literal character after it), and the
// key must continue with that delimiter; a placeholder at the end of the
// prefix runs to the next '/' or the end of the key. So uploads/{user_id}/
// and uploads/{user_id} both read uploads/12/a.jpg as user 12, never user 1.
// A placeholder that appears twice has the same value in both places.
type prefix struct {
	raw    string
	static string // literal text before the first placeholder
	segs   []segment
}

type segment struct {
	lit   string // literal text, when ph is empty
	ph    string // placeholder identity type
	delim byte   // for placeholders: the literal byte after it; 0 at the end
	same  int    // for placeholders: index of an earlier value of the same type, or -1
}

func parsePrefix(raw string) (*prefix, error) {
	if raw == "" {
		return nil, fmt.Errorf("%w: empty object prefix", datastore.ErrInvalid)
	}
	if strings.HasPrefix(raw, "/") {
		return nil, fmt.Errorf("%w: object prefix starts with /", datastore.ErrInvalid)
	}
	p := &prefix{raw: raw}
	for rest := raw; rest != ""; {
		open := strings.IndexByte(rest, '{')
		closeAt := strings.IndexByte(rest, '}')
		if open < 0 {
			if closeAt >= 0 {
				return nil, fmt.Errorf("%w: object prefix has an unmatched '}'", datastore.ErrInvalid)
			}
			p.segs = append(p.segs, segment{lit: rest})
			break
		}
		if closeAt >= 0 && closeAt < open {
			return nil, fmt.Errorf("%w: object prefix has an unmatched '}'", datastore.ErrInvalid)
		}
		if open > 0 {
			p.segs = append(p.segs, segment{lit: rest[:open]})
		}
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return nil, fmt.Errorf("%w: object prefix has an unmatched '{'", datastore.ErrInvalid)
		}
		name := rest[open+1 : open+end]
		if !validIdentityType(name) {
			return nil, fmt.Errorf("%w: object prefix placeholder {%s} is not an identity type (lowercase letters, digits, underscores)", datastore.ErrInvalid, name)
		}
		if n := len(p.segs); n > 0 && p.segs[n-1].ph != "" {
			return nil, fmt.Errorf("%w: object prefix has placeholders {%s}{%s} with nothing between them", datastore.ErrInvalid, p.segs[n-1].ph, name)
		}
		seg := segment{ph: name, same: -1}
		for i, s := range p.placeholderSegs() {
			if s.ph == name {
				seg.same = i
				break
			}
		}
		p.segs = append(p.segs, seg)
		rest = rest[open+end+1:]
	}
	for i := range p.segs {
		if p.segs[i].ph != "" && i+1 < len(p.segs) {
			p.segs[i].delim = p.segs[i+1].lit[0]
		}
	}
	for _, s := range p.segs {
		if s.ph != "" {
			break
		}
		p.static += s.lit
	}
	return p, nil
}

func (p *prefix) placeholderSegs() []segment {
	var out []segment
	for _, s := range p.segs {
		if s.ph != "" {
			out = append(out, s)
		}
	}
	return out
}

func validIdentityType(s string) bool {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

// types returns the identity types of the placeholders, in order, with
// repeats.
func (p *prefix) types() []string {
	var out []string
	for _, s := range p.segs {
		if s.ph != "" {
			out = append(out, s.ph)
		}
	}
	return out
}

// parse reads the placeholder values out of key; ok is false when the object
// is not in the collection.
func (p *prefix) parse(key string, vals []string) ([]string, bool) {
	vals = vals[:0]
	rest := key
	for _, s := range p.segs {
		if s.ph == "" {
			if !strings.HasPrefix(rest, s.lit) {
				return vals, false
			}
			rest = rest[len(s.lit):]
			continue
		}
		i := strings.IndexByte(rest, '/')
		if s.delim != 0 && s.delim != '/' {
			if j := strings.IndexByte(rest, s.delim); j >= 0 && (i < 0 || j < i) {
				i = j
			}
		}
		if i < 0 {
			if s.delim != 0 {
				return vals, false
			}
			i = len(rest)
		}
		v := rest[:i]
		if v == "" || (s.same >= 0 && vals[s.same] != v) {
			return vals, false
		}
		vals = append(vals, v)
		rest = rest[i:]
	}
	return vals, true
}

// listPrefix is the longest prefix every key with value v for the first
// placeholder has: the static text, v, and the literal after it.
func (p *prefix) listPrefix(v string) string {
	var b strings.Builder
	b.WriteString(p.static)
	seen := false
	for _, s := range p.segs {
		switch {
		case s.ph == "" && seen:
			b.WriteString(s.lit)
			return b.String()
		case s.ph != "" && seen:
			return b.String()
		case s.ph != "":
			b.WriteString(v)
			seen = true
		}
	}
	return b.String()
}

// checkValue validates an identity value substituted into the prefix: a
// safe path segment (non-empty, no '/', not . or .., no "..", no control
// characters) that does not contain its placeholder's delimiter. Values are
// never escaped or encoded: one that does not fit is refused.
func (p *prefix) checkValue(typ, v string) error {
	switch {
	case v == "":
		return fmt.Errorf("%w: empty %s value", datastore.ErrInvalid, typ)
	case strings.Contains(v, "/"):
		return fmt.Errorf("%w: a %s value contains '/', so it is not one path segment", datastore.ErrInvalid, typ)
	case v == "." || strings.Contains(v, ".."):
		return fmt.Errorf("%w: a %s value is '.' or contains '..', which servers may resolve as a path", datastore.ErrInvalid, typ)
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: a %s value contains a control character", datastore.ErrInvalid, typ)
		}
	}
	for _, s := range p.segs {
		if s.ph == typ && s.delim != 0 && strings.IndexByte(v, s.delim) >= 0 {
			return fmt.Errorf("%w: a %s value contains %q, the character that ends {%s} in the prefix, so its objects cannot be told apart from others'", datastore.ErrInvalid, typ, string(s.delim), typ)
		}
	}
	return nil
}

// heldMatcher reports whether key could be read as having value v for
// placeholder type typ, whatever v contains: the conservative test for held
// values the parse cannot produce.
func (p *prefix) heldMatcher(typ, v string) func(string) bool {
	// Literal runs separated by wildcards (other placeholders), anchored at
	// the start, open at the end.
	parts := []string{""}
	for _, s := range p.segs {
		switch {
		case s.ph == "":
			parts[len(parts)-1] += s.lit
		case s.ph == typ:
			parts[len(parts)-1] += v
		default:
			parts = append(parts, "")
		}
	}
	return func(key string) bool {
		if !strings.HasPrefix(key, parts[0]) {
			return false
		}
		rest := key[len(parts[0]):]
		for _, lit := range parts[1:] {
			i := strings.Index(rest, lit)
			if i < 0 {
				return false
			}
			rest = rest[i+len(lit):]
		}
		return true
	}
}
