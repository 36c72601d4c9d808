package redis

import (
	"fmt"
	"strings"

	"github.com/lethe-dev/lethe/internal/datastore"
)

// pattern is a parsed key pattern such as session:{user_id}:* .
//
// It is split into a head, made of literals and placeholders, and a tail,
// the text after the last placeholder, which may hold '*' wildcards. The
// parser insists on three rules that make every key's placeholder values
// unique, so that "whose key is this" has exactly one answer:
//
//   - no '*' before a placeholder (in *:{user_id} the wildcard and the value
//     could share the characters between them);
//   - a literal character between a placeholder and the next placeholder or
//     '*' ({a}{b} and {user_id}* are ambiguous: is session:12 user 1 or 12?);
//   - a placeholder that appears twice has the same value in both places
//     (otherwise the key is not in the collection);
//   - a placeholder's value never contains its delimiter, the literal
//     character that follows it (for session:{user_id}:* the value ends at
//     the first ':' after "session:"). A placeholder at the very end of the
//     pattern takes the rest of the key.
type pattern struct {
	raw  string
	head []segment
	tail []token // after the last placeholder; literals and stars
}

type segment struct {
	lit   string // literal text, when ph is empty
	ph    string // placeholder identity type
	delim byte   // for placeholders: the byte that ends the value; 0 at the end
	same  int    // for placeholders: index (among values) of an earlier one of the same type, or -1
}

// token is one piece of a glob: a literal run or a star.
type token struct {
	lit  string
	star bool
}

func parsePattern(raw string) (*pattern, error) {
	if raw == "" {
		return nil, fmt.Errorf("%w: empty key pattern", datastore.ErrInvalid)
	}
	p := &pattern{raw: raw}
	// Split into literal runs and placeholders.
	type piece struct {
		text string
		ph   bool
	}
	var pieces []piece
	for rest := raw; rest != ""; {
		open := strings.IndexByte(rest, '{')
		closeAt := strings.IndexByte(rest, '}')
		if open < 0 {
			if closeAt >= 0 {
				return nil, fmt.Errorf("%w: key pattern has an unmatched '}'", datastore.ErrInvalid)
			}
			pieces = append(pieces, piece{text: rest})
			break
		}
		if closeAt >= 0 && closeAt < open {
			return nil, fmt.Errorf("%w: key pattern has an unmatched '}'", datastore.ErrInvalid)
		}
		if open > 0 {
			pieces = append(pieces, piece{text: rest[:open]})
		}
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return nil, fmt.Errorf("%w: key pattern has an unmatched '{'", datastore.ErrInvalid)
		}
		name := rest[open+1 : open+end]
		if !validIdentityType(name) {
			return nil, fmt.Errorf("%w: key pattern placeholder {%s} is not an identity type (lowercase letters, digits, underscores)", datastore.ErrInvalid, name)
		}
		pieces = append(pieces, piece{text: name, ph: true})
		rest = rest[open+end+1:]
	}
	last := -1
	for i, pc := range pieces {
		if pc.ph {
			last = i
		}
	}
	for i, pc := range pieces {
		if i > last {
			p.tail = append(p.tail, globTokens(pc.text)...)
			continue
		}
		if !pc.ph {
			if strings.IndexByte(pc.text, '*') >= 0 {
				return nil, fmt.Errorf("%w: key pattern has a '*' before a placeholder; keys would be ambiguous", datastore.ErrInvalid)
			}
			p.head = append(p.head, segment{lit: pc.text})
			continue
		}
		seg := segment{ph: pc.text, same: -1}
		nph := 0
		for _, h := range p.head {
			if h.ph != "" {
				if h.ph == pc.text && seg.same < 0 {
					seg.same = nph
				}
				nph++
			}
		}
		if i+1 < len(pieces) {
			next := pieces[i+1]
			if next.ph {
				return nil, fmt.Errorf("%w: key pattern has placeholders {%s}{%s} with nothing between them; keys would be ambiguous", datastore.ErrInvalid, pc.text, next.text)
			}
			if next.text[0] == '*' {
				return nil, fmt.Errorf("%w: key pattern has a '*' right after {%s}; user 1 could not be told from user 12", datastore.ErrInvalid, pc.text)
			}
			seg.delim = next.text[0]
		}
		p.head = append(p.head, seg)
	}
	return p, nil
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

// globTokens splits literal pattern text on '*'.
func globTokens(s string) []token {
	var ts []token
	for s != "" {
		i := strings.IndexByte(s, '*')
		if i < 0 {
			ts = append(ts, token{lit: s})
			break
		}
		if i > 0 {
			ts = append(ts, token{lit: s[:i]})
		}
		if len(ts) == 0 || !ts[len(ts)-1].star {
			ts = append(ts, token{star: true})
		}
		s = s[i+1:]
	}
	return ts
}

// placeholders returns the identity types in the pattern, each once.
func (p *pattern) placeholders() []string {
	var out []string
	for _, s := range p.head {
		if s.ph != "" && !contains(out, s.ph) {
			out = append(out, s.ph)
		}
	}
	return out
}

func (p *pattern) hasStar() bool {
	for _, t := range p.tail {
		if t.star {
			return true
		}
	}
	return false
}

// parse reads the placeholder values out of a key, in head order. ok is false
// when the key is not in the collection.
func (p *pattern) parse(key string, vals []string) ([]string, bool) {
	vals = vals[:0]
	rest := key
	for _, s := range p.head {
		if s.ph == "" {
			if !strings.HasPrefix(rest, s.lit) {
				return vals, false
			}
			rest = rest[len(s.lit):]
			continue
		}
		var v string
		if s.delim == 0 {
			v, rest = rest, ""
		} else {
			i := strings.IndexByte(rest, s.delim)
			if i < 0 {
				return vals, false
			}
			v, rest = rest[:i], rest[i:]
		}
		if v == "" || (s.same >= 0 && vals[s.same] != v) {
			return vals, false
		}
		vals = append(vals, v)
	}
	return vals, matchTokens(p.tail, rest)
}

// matchTokens reports whether s matches a glob made of alternating literal
// runs and stars.
func matchTokens(ts []token, s string) bool {
	if len(ts) == 0 {
		return s == ""
	}
	if !ts[0].star {
		if !strings.HasPrefix(s, ts[0].lit) {
			return false
		}
		s, ts = s[len(ts[0].lit):], ts[1:]
		if len(ts) == 0 {
			return s == ""
		}
	}
	if last := ts[len(ts)-1]; !last.star {
		if !strings.HasSuffix(s, last.lit) {
			return false
		}
		s, ts = s[:len(s)-len(last.lit)], ts[:len(ts)-1]
	}
	// ts now starts and ends with a star: find the literals leftmost first.
	for _, t := range ts {
		if t.star {
			continue
		}
		i := strings.Index(s, t.lit)
		if i < 0 {
			return false
		}
		s = s[i+len(t.lit):]
	}
	return true
}

// glob renders the pattern as a Redis MATCH glob: each placeholder becomes
// the escaped value of subst (when it names it) or '*'.
func (p *pattern) glob(subst map[string]string) string {
	var b strings.Builder
	for _, s := range p.head {
		if s.ph == "" {
			b.WriteString(escapeGlob(s.lit))
			continue
		}
		if v, ok := subst[s.ph]; ok {
			b.WriteString(escapeGlob(v))
		} else {
			b.WriteByte('*')
		}
	}
	for _, t := range p.tail {
		if t.star {
			b.WriteByte('*')
		} else {
			b.WriteString(escapeGlob(t.lit))
		}
	}
	return b.String()
}

// key renders the pattern with every placeholder replaced by v; only for
// patterns without stars.
func (p *pattern) key(v string) string {
	var b strings.Builder
	for _, s := range p.head {
		if s.ph == "" {
			b.WriteString(s.lit)
		} else {
			b.WriteString(v)
		}
	}
	for _, t := range p.tail {
		b.WriteString(t.lit)
	}
	return b.String()
}

// subjectMatcher reports whether a key could be read as having value v for
// placeholder type typ, whatever v contains: the conservative test used for
// held values that the unique parse cannot produce (values that contain
// their delimiter).
func (p *pattern) subjectMatcher(typ, v string) []token {
	var ts []token
	add := func(t token) {
		if t.star {
			if len(ts) > 0 && ts[len(ts)-1].star {
				return
			}
			ts = append(ts, t)
			return
		}
		if len(ts) > 0 && !ts[len(ts)-1].star {
			ts[len(ts)-1].lit += t.lit
			return
		}
		ts = append(ts, t)
	}
	for _, s := range p.head {
		switch {
		case s.ph == "":
			add(token{lit: s.lit})
		case s.ph == typ:
			add(token{lit: v})
		default:
			add(token{star: true})
		}
	}
	for _, t := range p.tail {
		add(t)
	}
	return ts
}

// escapeGlob escapes the Redis glob metacharacters * ? [ ] \ in s.
func escapeGlob(s string) string {
	if !strings.ContainsAny(s, `*?[]\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// checkValue validates a subject value for placeholder type typ: non-empty
// and free of the delimiter of every placeholder of that type.
func (p *pattern) checkValue(typ, v string) error {
	if v == "" {
		return fmt.Errorf("%w: empty %s value", datastore.ErrInvalid, typ)
	}
	for _, s := range p.head {
		if s.ph == typ && s.delim != 0 && strings.IndexByte(v, s.delim) >= 0 {
			return fmt.Errorf("%w: a %s value contains %q, the character that ends {%s} in the key pattern, so its keys cannot be told apart from others'", datastore.ErrInvalid, typ, string(s.delim), typ)
		}
	}
	return nil
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
