package monitoring

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

type panel struct {
	ID      int     `json:"id"`
	Type    string  `json:"type"`
	Title   string  `json:"title"`
	Panels  []panel `json:"panels"`
	Targets []struct {
		Expr         string `json:"expr"`
		LegendFormat string `json:"legendFormat"`
		RefID        string `json:"refId"`
	} `json:"targets"`
	GridPos struct{ H, W, X, Y int } `json:"gridPos"`
}

type dashboard struct {
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

// grafanaVariables stand for the dashboard's and Grafana's variables when
// a query is checked.
var grafanaVariables = strings.NewReplacer(
	"$__rate_interval", "5m", "$__interval", "1m", "$__range", "1d",
	"${namespace}", ".*", "$namespace", ".*",
)

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root(t), "config", "grafana", "lethe.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("config/grafana/lethe.json: %v", err)
	}
	return d
}

func allPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

type query struct{ what, expr, legend string }

func queries(t *testing.T, d dashboard) []query {
	t.Helper()
	var qs []query
	for _, p := range allPanels(d.Panels) {
		for _, tg := range p.Targets {
			qs = append(qs, query{fmt.Sprintf("panel %q (query %s)", p.Title, tg.RefID), grafanaVariables.Replace(tg.Expr), tg.LegendFormat})
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, _ := v.Query.(map[string]any)
		s, _ := q["query"].(string)
		if m := regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`).FindStringSubmatch(s); m != nil {
			qs = append(qs, query{fmt.Sprintf("variable %s", v.Name), fmt.Sprintf("count by (%s) (%s)", m[2], m[1]), ""})
		} else {
			t.Errorf("variable %s: cannot read query %v", v.Name, v.Query)
		}
	}
	return qs
}

// The dashboard is valid JSON with a uid, unique panel ids, a query on
// every panel but rows, and every query parses (promtool check rules).
func TestDashboardIsWellFormed(t *testing.T) {
	d := readDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Error("the dashboard needs a uid and a title")
	}
	ids := map[int]bool{}
	for _, p := range allPanels(d.Panels) {
		if ids[p.ID] {
			t.Errorf("panel id %d is used twice", p.ID)
		}
		ids[p.ID] = true
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		if p.GridPos.W == 0 || p.GridPos.H == 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q has grid position %+v", p.Title, p.GridPos)
		}
	}
	checkSyntax(t, queries(t, d))
}

// Every metric, label and legend label a panel uses is one the manager
// exports.
func TestDashboardUsesExportedMetrics(t *testing.T) {
	c := exported(t)
	for _, q := range queries(t, readDashboard(t)) {
		c.check(t, q.what, q.expr)
		u, err := extract(q.expr)
		if err != nil {
			continue
		}
		have := map[string]bool{}
		for _, s := range u.selectors {
			for l := range c[s.metric] {
				have[l] = true
			}
		}
		for _, m := range regexp.MustCompile(`\{\{\s*(\w+)\s*\}\}`).FindAllStringSubmatch(q.legend, -1) {
			if !have[m[1]] {
				t.Errorf("%s: legend uses label %s, which none of its metrics has", q.what, m[1])
			}
		}
	}
}

// checkSyntax has promtool parse every query, as recording rules.
func checkSyntax(t *testing.T, qs []query) {
	t.Helper()
	type rule struct {
		Record string `json:"record"`
		Expr   string `json:"expr"`
	}
	var rules []rule
	for i, q := range qs {
		rules = append(rules, rule{fmt.Sprintf("lethe_dashboard:query_%d", i), q.expr})
	}
	b, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "dashboard-queries.yaml")
	if err := os.WriteFile(f, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool(t), "check", "rules", f).CombinedOutput(); err != nil {
		t.Errorf("promtool cannot parse the dashboard's queries: %v\n%s", err, out)
	}
}
