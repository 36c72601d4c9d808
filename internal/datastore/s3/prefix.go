package s3

import (
	"strings"

	"github.com/lethe-dev/lethe/internal/datastore/keytemplate"
)

// prefix is a parsed object prefix such as uploads/{user_id}/ (see package
// keytemplate for how a key's values are read).
type prefix struct {
	*keytemplate.Template
	static string // literal text before the first placeholder
}

func parsePrefix(raw string) (*prefix, error) {
	t, err := keytemplate.Parse(keytemplate.Prefix, raw)
	if err != nil {
		return nil, err
	}
	p := &prefix{Template: t}
	for _, s := range t.Head {
		if s.Type != "" {
			return p, nil
		}
		p.static += s.Lit
	}
	p.static += t.Tail
	return p, nil
}

// listPrefix is the longest prefix every key with value v for the first
// placeholder has: the static text, v, and the literal after it.
func (p *prefix) listPrefix(v string) string {
	var b strings.Builder
	b.WriteString(p.static)
	seen := false
	for _, s := range p.Head {
		switch {
		case s.Type == "" && seen:
			b.WriteString(s.Lit)
			return b.String()
		case s.Type != "" && seen:
			return b.String()
		case s.Type != "":
			b.WriteString(v)
			seen = true
		}
	}
	if seen {
		b.WriteString(p.Tail)
	}
	return b.String()
}
