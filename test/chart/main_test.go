// Package chart checks that Lethe's Helm chart (charts/lethe) cannot drift
// from the kustomize configuration in config/: its CRDs are config's byte
// for byte, its RBAC rules, admission policies and ServiceAccount are those
// `kubectl kustomize config/default` (and config/namespaced with
// config/rbac-namespaced) renders, its copies of config files and
// config/prometheus/alerts.yaml are current, and `helm lint --strict` is
// clean. It renders the chart with Helm's Go library (internal/helmchart).
package chart

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/lethe-dev/lethe/internal/helmchart"
	"github.com/lethe-dev/lethe/internal/testenv"
)

const (
	release   = "lethe"
	namespace = "lethe-system"
)

func root(t *testing.T) string {
	t.Helper()
	r, err := testenv.Root()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// object is one rendered Kubernetes object.
type object map[string]any

func (o object) kind() string { s, _ := o["kind"].(string); return s }

func (o object) meta() map[string]any { m, _ := o["metadata"].(map[string]any); return m }

func (o object) name() string { s, _ := o.meta()["name"].(string); return s }

func (o object) namespace() string { s, _ := o.meta()["namespace"].(string); return s }

func (o object) key() string { return o.kind() + "/" + o.name() }

func parse(t *testing.T, docs []string) []object {
	t.Helper()
	var out []object
	for _, d := range docs {
		var o object
		if err := yaml.Unmarshal([]byte(d), &o); err != nil {
			t.Fatalf("rendered YAML does not parse: %v\n%s", err, d)
		}
		if len(o) > 0 {
			out = append(out, o)
		}
	}
	return out
}

// render renders the chart as release lethe in lethe-system with values.
func render(t *testing.T, values map[string]any) []object {
	t.Helper()
	ms, err := helmchart.Render(helmchart.Dir(root(t)), release, namespace, values)
	if err != nil {
		t.Fatalf("rendering the chart: %v", err)
	}
	return parse(t, helmchart.Documents(ms))
}

// kustomize renders a kustomization of config/ with the kubectl built by
// `make controlplane`.
func kustomize(t *testing.T, dir string) []object {
	t.Helper()
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		assets = filepath.Join(root(t), "bin", "k8s")
	}
	kubectl := filepath.Join(assets, "kubectl")
	if _, err := os.Stat(kubectl); err != nil {
		t.Fatalf("kubectl missing in %s: run `make controlplane`", assets)
	}
	out, err := exec.Command(kubectl, "kustomize", filepath.Join(root(t), dir)).Output()
	if err != nil {
		t.Fatalf("kubectl kustomize %s: %v", dir, err)
	}
	return parse(t, strings.Split("\n"+string(out), "\n---"))
}

func byKey(objs []object) map[string]object {
	m := map[string]object{}
	for _, o := range objs {
		m[o.key()] = o
	}
	return m
}

func find(t *testing.T, objs []object, kind, name string) object {
	t.Helper()
	for _, o := range objs {
		if o.kind() == kind && o.name() == name {
			return o
		}
	}
	t.Fatalf("no %s %s rendered", kind, name)
	return nil
}
