package keytemplate

import (
	"fmt"
	"strings"

	"github.com/lethe-dev/lethe/internal/datastore"
)

// Values reads the placeholder values out of key, in Head order, into vals
// (reused). ok is false when the key is not in the collection.
func (t *Template) Values(key string, vals []string) ([]string, bool) {
	vals = vals[:0]
	rest := key
	for _, s := range t.Head {
		if s.Type == "" {
			if !strings.HasPrefix(rest, s.Lit) {
				return vals, false
			}
			rest = rest[len(s.Lit):]
			continue
		}
		end := t.valueEnd(rest, s.Delim)
		if end < 0 {
			return vals, false
		}
		v := rest[:end]
		if v == "" || (s.Same >= 0 && vals[s.Same] != v) {
			return vals, false
		}
		vals = append(vals, v)
		rest = rest[end:]
	}
	if t.Kind == Prefix {
		return vals, strings.HasPrefix(rest, t.Tail)
	}
	return vals, t.TailGlob.Match(rest)
}

// valueEnd is the length of the value at the start of rest for a
// placeholder with delimiter delim, or -1 when the delimiter is missing.
func (t *Template) valueEnd(rest string, delim byte) int {
	end := -1
	if delim != 0 {
		end = strings.IndexByte(rest, delim)
	}
	if t.Kind == Prefix {
		if i := strings.IndexByte(rest, '/'); i >= 0 && (end < 0 || i < end) {
			end = i
		}
	}
	if end < 0 && delim == 0 {
		end = len(rest)
	}
	return end
}

// Check validates a subject value for placeholder type typ: non-empty, free
// of the delimiter of every placeholder of that type and, in a prefix, one
// safe path segment (no '/', not '.', no "..", no control characters).
// Values are never escaped or encoded: one that does not fit is refused
// (ErrInvalid).
func (t *Template) Check(typ, v string) error {
	if v == "" {
		return fmt.Errorf("%w: empty %s value", datastore.ErrInvalid, typ)
	}
	if t.Kind == Prefix {
		switch {
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
	}
	for _, s := range t.Head {
		if s.Type != typ || s.Delim == 0 || strings.IndexByte(v, s.Delim) < 0 {
			continue
		}
		if t.Kind == Prefix {
			return fmt.Errorf("%w: a %s value contains %q, the character that ends {%s} in the prefix, so its objects cannot be told apart from others'", datastore.ErrInvalid, typ, string(s.Delim), typ)
		}
		return fmt.Errorf("%w: a %s value contains %q, the character that ends {%s} in the key pattern, so its keys cannot be told apart from others'", datastore.ErrInvalid, typ, string(s.Delim), typ)
	}
	return nil
}

// HeldGlob matches the keys that could be read as having value v for
// placeholder type typ, whatever v contains: the conservative test for held
// values that Values cannot produce (Check refuses them).
func (t *Template) HeldGlob(typ, v string) Glob {
	var g Glob
	for _, s := range t.Head {
		switch {
		case s.Type == "":
			g = g.add(Token{Lit: s.Lit})
		case s.Type == typ:
			g = g.add(Token{Lit: v})
		default:
			g = g.add(Token{Star: true})
		}
	}
	if t.Kind == Prefix {
		return g.add(Token{Lit: t.Tail}).add(Token{Star: true})
	}
	for _, tk := range t.TailGlob {
		g = g.add(tk)
	}
	return g
}

// Glob is a glob of literal runs and '*' wildcards, anchored at both ends.
type Glob []Token

// Token is a literal run or a star.
type Token struct {
	Lit  string
	Star bool
}

// splitGlob splits text on '*'.
func splitGlob(s string) Glob {
	var g Glob
	for s != "" {
		i := strings.IndexByte(s, '*')
		if i < 0 {
			g = append(g, Token{Lit: s})
			break
		}
		if i > 0 {
			g = append(g, Token{Lit: s[:i]})
		}
		if len(g) == 0 || !g[len(g)-1].Star {
			g = append(g, Token{Star: true})
		}
		s = s[i+1:]
	}
	return g
}

// add appends tk, joining it to a last token of its kind; empty literals
// are dropped.
func (g Glob) add(tk Token) Glob {
	switch {
	case !tk.Star && tk.Lit == "":
		return g
	case len(g) == 0:
		return append(g, tk)
	case tk.Star && g[len(g)-1].Star:
		return g
	case !tk.Star && !g[len(g)-1].Star:
		g[len(g)-1].Lit += tk.Lit
		return g
	}
	return append(g, tk)
}

// Match reports whether all of s matches g.
func (g Glob) Match(s string) bool {
	if len(g) == 0 {
		return s == ""
	}
	if !g[0].Star {
		if !strings.HasPrefix(s, g[0].Lit) {
			return false
		}
		s, g = s[len(g[0].Lit):], g[1:]
		if len(g) == 0 {
			return s == ""
		}
	}
	if last := g[len(g)-1]; !last.Star {
		if !strings.HasSuffix(s, last.Lit) {
			return false
		}
		s, g = s[:len(s)-len(last.Lit)], g[:len(g)-1]
	}
	// g now starts and ends with a star: find the literals leftmost first.
	for _, t := range g {
		if t.Star {
			continue
		}
		i := strings.Index(s, t.Lit)
		if i < 0 {
			return false
		}
		s = s[i+len(t.Lit):]
	}
	return true
}
