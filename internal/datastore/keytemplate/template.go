package keytemplate

import (
	"fmt"
	"slices"
	"strings"

	"github.com/lethe-dev/lethe/internal/datastore"
)

// Kind is the kind of a template: what a key must do to be in the
// collection, and how errors name the template.
type Kind int

const (
	// Pattern is a Redis key pattern: the whole key matches, and the text
	// after the last placeholder may hold '*' wildcards.
	Pattern Kind = iota
	// Prefix is an S3 object prefix: a key is in the collection when it
	// starts with the prefix; values end at a '/' too.
	Prefix
)

// String names the kind in error messages.
func (k Kind) String() string {
	if k == Prefix {
		return "object prefix"
	}
	return "key pattern"
}

// Template is a parsed key template (see the package documentation).
type Template struct {
	Kind Kind
	Raw  string
	// Head is the literals and placeholders up to the last placeholder;
	// Tail the literal text after it (all of Raw without placeholders).
	Head []Segment
	Tail string
	// TailGlob is Tail split on '*' (patterns only).
	TailGlob Glob
}

// Segment is a literal or a placeholder of a template's Head.
type Segment struct {
	Lit  string // literal text, when Type is empty
	Type string // placeholder: its identity type
	// Delim is, for a placeholder, the literal byte after it that ends its
	// value; 0 at the end of the template.
	Delim byte
	// Same is, for a placeholder, the index (among the values) of an earlier
	// placeholder of the same type, or -1.
	Same int
}

// Parse parses raw as a template of kind k. Errors wrap
// datastore.ErrInvalid.
func Parse(k Kind, raw string) (*Template, error) {
	if raw == "" {
		return nil, fmt.Errorf("%w: empty %s", datastore.ErrInvalid, k)
	}
	if k == Prefix && strings.HasPrefix(raw, "/") {
		return nil, fmt.Errorf("%w: %s starts with /", datastore.ErrInvalid, k)
	}
	pieces, err := split(k, raw)
	if err != nil {
		return nil, err
	}
	last := -1
	for i, pc := range pieces {
		if pc.ph {
			last = i
		}
	}
	t := &Template{Kind: k, Raw: raw}
	for i, pc := range pieces {
		if i > last {
			t.Tail += pc.text
			continue
		}
		if !pc.ph {
			if k == Pattern && strings.IndexByte(pc.text, '*') >= 0 {
				return nil, fmt.Errorf("%w: %s has a '*' before a placeholder; keys would be ambiguous", datastore.ErrInvalid, k)
			}
			t.Head = append(t.Head, Segment{Lit: pc.text})
			continue
		}
		seg := Segment{Type: pc.text, Same: -1}
		n := 0
		for _, h := range t.Head {
			if h.Type != "" {
				if h.Type == pc.text && seg.Same < 0 {
					seg.Same = n
				}
				n++
			}
		}
		if i+1 < len(pieces) {
			next := pieces[i+1]
			switch {
			case next.ph: // a pattern's; split refuses a prefix's
				return nil, fmt.Errorf("%w: %s has placeholders {%s}{%s} with nothing between them; keys would be ambiguous", datastore.ErrInvalid, k, pc.text, next.text)
			case k == Pattern && next.text[0] == '*':
				return nil, fmt.Errorf("%w: %s has a '*' right after {%s}; user 1 could not be told from user 12", datastore.ErrInvalid, k, pc.text)
			}
			seg.Delim = next.text[0]
		}
		t.Head = append(t.Head, seg)
	}
	if k == Pattern {
		t.TailGlob = splitGlob(t.Tail)
	}
	return t, nil
}

// piece is a literal run or a placeholder's identity type.
type piece struct {
	text string
	ph   bool
}

// split cuts raw into literal runs and placeholders, checking the braces
// and the identity types, and, in a prefix, that no placeholder follows
// another.
func split(k Kind, raw string) ([]piece, error) {
	var pieces []piece
	for rest := raw; rest != ""; {
		open := strings.IndexByte(rest, '{')
		closeAt := strings.IndexByte(rest, '}')
		if open < 0 {
			if closeAt >= 0 {
				return nil, fmt.Errorf("%w: %s has an unmatched '}'", datastore.ErrInvalid, k)
			}
			pieces = append(pieces, piece{text: rest})
			break
		}
		if closeAt >= 0 && closeAt < open {
			return nil, fmt.Errorf("%w: %s has an unmatched '}'", datastore.ErrInvalid, k)
		}
		if open > 0 {
			pieces = append(pieces, piece{text: rest[:open]})
		}
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return nil, fmt.Errorf("%w: %s has an unmatched '{'", datastore.ErrInvalid, k)
		}
		name := rest[open+1 : open+end]
		if !validIdentityType(name) {
			return nil, fmt.Errorf("%w: %s placeholder {%s} is not an identity type (lowercase letters, digits, underscores)", datastore.ErrInvalid, k, name)
		}
		if n := len(pieces); k == Prefix && n > 0 && pieces[n-1].ph {
			return nil, fmt.Errorf("%w: %s has placeholders {%s}{%s} with nothing between them", datastore.ErrInvalid, k, pieces[n-1].text, name)
		}
		pieces = append(pieces, piece{text: name, ph: true})
		rest = rest[open+end+1:]
	}
	return pieces, nil
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

// Types returns the identity type of each placeholder, in order, with
// repeats: the types of the values Values returns.
func (t *Template) Types() []string {
	var out []string
	for _, s := range t.Head {
		if s.Type != "" {
			out = append(out, s.Type)
		}
	}
	return out
}

// DistinctTypes returns the identity types of the placeholders, each once.
func (t *Template) DistinctTypes() []string {
	var out []string
	for _, typ := range t.Types() {
		if !slices.Contains(out, typ) {
			out = append(out, typ)
		}
	}
	return out
}

// HasWildcard reports whether a pattern's tail holds a '*'.
func (t *Template) HasWildcard() bool {
	for _, tk := range t.TailGlob {
		if tk.Star {
			return true
		}
	}
	return false
}
