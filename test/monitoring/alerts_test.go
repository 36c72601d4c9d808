package monitoring

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/lethe-dev/lethe/internal/testenv"
)

type ruleFile struct {
	Groups []struct {
		Name  string
		Rules []struct {
			Alert, Record, Expr string
		}
	}
}

type unitTests struct {
	Tests []struct {
		Name          string
		AlertRuleTest []struct {
			Alertname string `json:"alertname"`
			ExpAlerts []any  `json:"exp_alerts"`
		} `json:"alert_rule_test"`
	}
}

func root(t *testing.T) string {
	t.Helper()
	r, err := testenv.Root()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// promtool is bin/promtool, linked by hack/build-promtool.sh.
func promtool(t *testing.T) string {
	t.Helper()
	p := filepath.Join(root(t), "bin", "promtool")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("promtool missing (%v): run `make promtool` (builds it once from its Go module)", err)
	}
	return p
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// promtool check rules and promtool test rules pass, and the unit tests
// have, for every alert, a case where it fires and one where it does not.
func TestAlertsWithPromtool(t *testing.T) {
	dir := filepath.Join(root(t), "config", "prometheus")
	testFiles, err := filepath.Glob(filepath.Join(dir, "*_test.yaml"))
	if err != nil || len(testFiles) == 0 {
		t.Fatalf("no promtool tests in %s (%v)", dir, err)
	}
	for i, f := range testFiles {
		testFiles[i] = filepath.Base(f)
	}
	for _, args := range [][]string{{"check", "rules", "alerts.yaml"}, append([]string{"test", "rules"}, testFiles...)} {
		cmd := exec.Command(promtool(t), args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		t.Logf("promtool %s:\n%s", strings.Join(args, " "), out)
		if err != nil {
			t.Errorf("promtool %s: %v", strings.Join(args, " "), err)
		}
	}

	var rules ruleFile
	readYAML(t, filepath.Join(dir, "alerts.yaml"), &rules)
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, f := range testFiles {
		var tests unitTests
		readYAML(t, filepath.Join(dir, f), &tests)
		for _, tc := range tests.Tests {
			for _, a := range tc.AlertRuleTest {
				if len(a.ExpAlerts) > 0 {
					fires[a.Alertname] = true
				} else {
					quiet[a.Alertname] = true
				}
			}
		}
	}
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			n++
			if !fires[r.Alert] {
				t.Errorf("alert %s has no test where it fires", r.Alert)
			}
			if !quiet[r.Alert] {
				t.Errorf("alert %s has no test where it stays quiet", r.Alert)
			}
		}
	}
	if n == 0 {
		t.Fatal("alerts.yaml holds no alert")
	}
}

// Every metric and label an alert uses is one the manager exports.
func TestAlertsUseExportedMetrics(t *testing.T) {
	c := exported(t)
	var rules ruleFile
	readYAML(t, filepath.Join(root(t), "config", "prometheus", "alerts.yaml"), &rules)
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			c.check(t, fmt.Sprintf("alert %s", r.Alert), r.Expr)
		}
	}
}
