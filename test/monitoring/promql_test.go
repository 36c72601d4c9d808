package monitoring

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"unicode"
)

// A small reader of the PromQL used by the alerts and the dashboard: it
// finds the metric selectors (name and matched labels) and the labels of
// by/without/on/ignoring/group_left/group_right clauses. promtool checks
// the full syntax (see checkSyntax); this only needs to find names.

type selector struct {
	metric string
	labels []string
}

type usage struct {
	selectors []selector
	grouping  []string
}

type token struct {
	kind byte // 'i' identifier, 's' string, 'n' number or duration, 'p' punctuation
	text string
}

var (
	groupingWords = []string{"by", "without", "on", "ignoring", "group_left", "group_right"}
	keywords      = []string{"and", "or", "unless", "offset", "bool", "inf", "nan", "atan2"}
	// aggregators may be followed by a by or without clause before "(".
	aggregators = []string{"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk", "quantile", "limitk", "limit_ratio"}
)

func tokenize(q string) ([]token, error) {
	var out []token
	r := []rune(q)
	for i := 0; i < len(r); {
		c := r[i]
		switch {
		case unicode.IsSpace(c):
			i++
		case c == '#':
			for i < len(r) && r[i] != '\n' {
				i++
			}
		case c == '"' || c == '\'' || c == '`':
			j := i + 1
			for j < len(r) && r[j] != c {
				if r[j] == '\\' && c != '`' {
					j++
				}
				j++
			}
			if j >= len(r) {
				return nil, fmt.Errorf("unterminated string in %q", q)
			}
			out = append(out, token{'s', string(r[i+1 : j])})
			i = j + 1
		case c == '_' || c == ':' || unicode.IsLetter(c):
			j := i
			for j < len(r) && (r[j] == '_' || r[j] == ':' || unicode.IsLetter(r[j]) || unicode.IsDigit(r[j])) {
				j++
			}
			out = append(out, token{'i', string(r[i:j])})
			i = j
		case unicode.IsDigit(c) || c == '.':
			j := i
			for j < len(r) && (r[j] == '.' || unicode.IsLetter(r[j]) || unicode.IsDigit(r[j])) {
				j++
			}
			out = append(out, token{'n', string(r[i:j])})
			i = j
		default:
			two := ""
			if i+1 < len(r) {
				two = string(r[i : i+2])
			}
			if slices.Contains([]string{"=~", "!~", "!=", "==", ">=", "<="}, two) {
				out = append(out, token{'p', two})
				i += 2
				continue
			}
			out = append(out, token{'p', string(c)})
			i++
		}
	}
	return out, nil
}

// extract finds the selectors and grouping labels of q.
func extract(q string) (usage, error) {
	toks, err := tokenize(q)
	if err != nil {
		return usage{}, err
	}
	var u usage
	at := func(i int) token {
		if i < len(toks) {
			return toks[i]
		}
		return token{}
	}
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		switch {
		case t.kind == 'p' && t.text == "[":
			for i < len(toks) && toks[i].text != "]" {
				i++
			}
		case t.kind == 'i' && slices.Contains(groupingWords, t.text):
			if at(i+1).text != "(" {
				continue
			}
			i += 2
			for ; i < len(toks) && toks[i].text != ")"; i++ {
				if toks[i].kind == 'i' {
					u.grouping = append(u.grouping, toks[i].text)
				}
			}
		case t.kind == 'i' && slices.Contains(keywords, strings.ToLower(t.text)):
		case t.kind == 'i' && (at(i+1).text == "(" || slices.Contains(aggregators, t.text)):
			// a function or an aggregation
		case t.kind == 'i' || (t.kind == 'p' && t.text == "{"):
			s := selector{}
			if t.kind == 'i' {
				s.metric = t.text
				if at(i+1).text != "{" {
					u.selectors = append(u.selectors, s)
					continue
				}
				i++
			}
			// matchers: label op "value" [, …] }
			for i++; i < len(toks) && toks[i].text != "}"; i++ {
				if toks[i].kind != 'i' {
					continue
				}
				op, val := at(i+1), at(i+2)
				if !slices.Contains([]string{"=", "!=", "=~", "!~"}, op.text) || val.kind != 's' {
					return u, fmt.Errorf("cannot read the matcher at %q in %q", toks[i].text, q)
				}
				if toks[i].text == "__name__" && op.text == "=" {
					s.metric = val.text
				} else {
					s.labels = append(s.labels, toks[i].text)
				}
				i += 2
			}
			if s.metric == "" {
				return u, fmt.Errorf("a selector without a metric name in %q", q)
			}
			u.selectors = append(u.selectors, s)
		}
	}
	return u, nil
}

func TestExtract(t *testing.T) {
	u, err := extract(`sum by (le, store) (rate(lethe_batch_duration_seconds_bucket{store=~"a|b"}[5m] offset 1d)) / on (store) group_left max(x) > 0.5 and absent(y{name="z"} == 1)`)
	if err != nil {
		t.Fatal(err)
	}
	want := []selector{{"lethe_batch_duration_seconds_bucket", []string{"store"}}, {"x", nil}, {"y", []string{"name"}}}
	if fmt.Sprint(u.selectors) != fmt.Sprint(want) {
		t.Errorf("selectors = %v; want %v", u.selectors, want)
	}
	if fmt.Sprint(u.grouping) != "[le store store]" {
		t.Errorf("grouping = %v", u.grouping)
	}
}
