// Package gitops tests how GitOps tools read the health of Lethe's objects:
// the Argo CD health script of config/argocd (run with gopher-lua, the Lua
// interpreter Argo CD embeds, as Argo CD tests its resource
// customizations) and the Flux healthCheckExprs of config/flux (evaluated
// with cel-go as kustomize-controller does), against fixture objects of
// every lifecycle state of every kind (config/argocd/*/testdata).
package gitops

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/helmchart"
	"github.com/lethe-dev/lethe/internal/testenv"
)

// fixture is one object of config/argocd/<dir>/testdata with the health
// Argo CD must give it.
type fixture struct {
	kind, path string
	object     *unstructured.Unstructured
	status     string // Argo CD: Healthy, Progressing, Degraded, Suspended
	message    string
}

type healthTests struct {
	Tests []struct {
		HealthStatus struct{ Status, Message string } `json:"healthStatus"`
		InputPath    string                           `json:"inputPath"`
	}
}

func argoDir(t *testing.T) string {
	t.Helper()
	root, err := testenv.Root()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "config", "argocd")
}

// fixtures reads every kind's health_test.yaml and its objects, each
// decoded strictly into its Go type first (so the fixtures are objects the
// API server would accept).
func fixtures(t *testing.T) []fixture {
	t.Helper()
	var out []fixture
	for _, kind := range helmchart.ArgoKinds {
		dir := filepath.Join(argoDir(t), "retention.lethe.dev_"+kind)
		var tests healthTests
		readYAML(t, filepath.Join(dir, "health_test.yaml"), &tests)
		if len(tests.Tests) == 0 {
			t.Errorf("%s has no health tests", kind)
		}
		for _, tc := range tests.Tests {
			path := filepath.Join(dir, tc.InputPath)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := yaml.UnmarshalStrict(b, typed(t, kind)); err != nil {
				t.Errorf("%s is not a valid %s: %v", path, kind, err)
			}
			j, err := yaml.YAMLToJSON(b)
			if err != nil {
				t.Fatal(err)
			}
			u := &unstructured.Unstructured{}
			if err := u.UnmarshalJSON(j); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			if u.GetKind() != kind {
				t.Errorf("%s holds a %s; want a %s", path, u.GetKind(), kind)
			}
			out = append(out, fixture{kind, strings.TrimPrefix(path, argoDir(t)+"/"), u, tc.HealthStatus.Status, tc.HealthStatus.Message})
		}
	}
	return out
}

func typed(t *testing.T, kind string) any {
	t.Helper()
	switch kind {
	case "DataStore":
		return &retentionv1.DataStore{}
	case "Dataset":
		return &retentionv1.Dataset{}
	case "RetentionPolicy":
		return &retentionv1.RetentionPolicy{}
	case "DeletionRequest":
		return &retentionv1.DeletionRequest{}
	case "LegalHold":
		return &retentionv1.LegalHold{}
	case "PurgeJob":
		return &retentionv1.PurgeJob{}
	case "Recipient":
		return &retentionv1.Recipient{}
	case "ErasureReplay":
		return &retentionv1.ErasureReplay{}
	}
	t.Fatalf("unknown kind %s", kind)
	return nil
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// Every kind has fixtures for every health Argo CD can give it: each kind
// can be new (Progressing), healthy and degraded.
func TestFixturesCoverEveryKindAndState(t *testing.T) {
	seen := map[string]map[string]bool{}
	for _, f := range fixtures(t) {
		if seen[f.kind] == nil {
			seen[f.kind] = map[string]bool{}
		}
		seen[f.kind][f.status] = true
	}
	want := map[string][]string{
		"DataStore":       {"Progressing", "Healthy", "Degraded"},
		"Dataset":         {"Progressing", "Healthy", "Degraded"},
		"RetentionPolicy": {"Progressing", "Healthy", "Degraded", "Suspended"},
		"DeletionRequest": {"Progressing", "Healthy", "Degraded", "Suspended"},
		"LegalHold":       {"Progressing", "Healthy", "Degraded"},
		"PurgeJob":        {"Progressing", "Healthy", "Degraded"},
		"Recipient":       {"Progressing", "Healthy", "Degraded"},
		"ErasureReplay":   {"Progressing", "Healthy", "Degraded"},
	}
	for kind, statuses := range want {
		for _, s := range statuses {
			if !seen[kind][s] {
				t.Errorf("no %s fixture is %s", kind, s)
			}
		}
	}
}
