package redis

import (
	"strings"

	"github.com/lethe-dev/lethe/internal/datastore/keytemplate"
)

// pattern is a parsed key pattern such as session:{user_id}:* (see package
// keytemplate for the rules that make every key's values unique).
type pattern struct {
	*keytemplate.Template
}

func parsePattern(raw string) (*pattern, error) {
	t, err := keytemplate.Parse(keytemplate.Pattern, raw)
	if err != nil {
		return nil, err
	}
	return &pattern{t}, nil
}

// glob renders the pattern as a Redis MATCH glob: each placeholder becomes
// the escaped value of subst (when it names it) or '*'.
func (p *pattern) glob(subst map[string]string) string {
	var b strings.Builder
	for _, s := range p.Head {
		if s.Type == "" {
			b.WriteString(escapeGlob(s.Lit))
			continue
		}
		if v, ok := subst[s.Type]; ok {
			b.WriteString(escapeGlob(v))
		} else {
			b.WriteByte('*')
		}
	}
	for _, t := range p.TailGlob {
		if t.Star {
			b.WriteByte('*')
		} else {
			b.WriteString(escapeGlob(t.Lit))
		}
	}
	return b.String()
}

// key renders the pattern with every placeholder replaced by v; only for
// patterns without wildcards.
func (p *pattern) key(v string) string {
	var b strings.Builder
	for _, s := range p.Head {
		if s.Type == "" {
			b.WriteString(s.Lit)
		} else {
			b.WriteString(v)
		}
	}
	b.WriteString(p.Tail)
	return b.String()
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
