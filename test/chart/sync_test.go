package chart

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/lethe-dev/lethe/internal/helmchart"
)

const stale = "; run `make manifests` and commit"

// The chart's crds/ are config/crd/bases, byte for byte, with no more and
// no fewer files.
func TestCRDsAreConfigCRDs(t *testing.T) {
	r := root(t)
	want, err := filepath.Glob(filepath.Join(r, "config", "crd", "bases", "*.yaml"))
	if err != nil || len(want) == 0 {
		t.Fatalf("no CRDs in config/crd/bases (%v)", err)
	}
	got, err := filepath.Glob(filepath.Join(helmchart.Dir(r), "crds", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Errorf("charts/lethe/crds has %d CRDs, config/crd/bases %d"+stale, len(got), len(want))
	}
	for _, f := range want {
		sameBytes(t, f, filepath.Join(helmchart.Dir(r), "crds", filepath.Base(f)))
	}
}

// The chart's copies of config files are current, and so is
// config/prometheus/alerts.yaml, rendered from the chart.
func TestCopiesAreCurrent(t *testing.T) {
	r := root(t)
	for from, to := range helmchart.Copies {
		sameBytes(t, filepath.Join(r, from), filepath.Join(r, to))
	}
	alerts, err := helmchart.Alerts(helmchart.Dir(r))
	if err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile(filepath.Join(r, "config", "prometheus", "alerts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if alerts != string(committed) {
		t.Errorf("config/prometheus/alerts.yaml differs from the chart's PrometheusRule" + stale)
	}
}

func sameBytes(t *testing.T, want, got string) {
	t.Helper()
	w, err := os.ReadFile(want)
	if err != nil {
		t.Fatal(err)
	}
	g, err := os.ReadFile(got)
	if err != nil {
		t.Errorf("%s: %v"+stale, got, err)
		return
	}
	if !bytes.Equal(w, g) {
		t.Errorf("%s differs from %s"+stale, got, want)
	}
}

// helm lint --strict is clean with the default values and with every
// optional part switched on.
func TestHelmLint(t *testing.T) {
	for name, values := range helmchart.LintValues {
		for _, p := range helmchart.Lint(helmchart.Dir(root(t)), namespace, values) {
			t.Errorf("%s: %s", name, p)
		}
	}
}
