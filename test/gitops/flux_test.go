package gitops

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/ext"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/lethe-dev/lethe/internal/helmchart"
)

type healthCheckExpr struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Current    string `json:"current"`
	InProgress string `json:"inProgress,omitempty"`
	Failed     string `json:"failed,omitempty"`
}

func fluxExprs(t *testing.T) map[string]healthCheckExpr {
	t.Helper()
	var k struct {
		Spec struct {
			HealthCheckExprs []healthCheckExpr `json:"healthCheckExprs"`
		} `json:"spec"`
	}
	b, err := os.ReadFile(filepath.Join(filepath.Dir(argoDir(t)), "flux", "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &k); err != nil {
		t.Fatal(err)
	}
	out := map[string]healthCheckExpr{}
	for _, e := range k.Spec.HealthCheckExprs {
		if e.APIVersion != "retention.lethe.dev/v1alpha1" {
			t.Errorf("health check of %s has apiVersion %s", e.Kind, e.APIVersion)
		}
		out[e.Kind] = e
	}
	return out
}

// celEnv is the environment kustomize-controller evaluates healthCheckExprs
// in (github.com/fluxcd/pkg/runtime/cel): the object's top-level fields are
// the variables, expressions are parsed, not type-checked.
func celEnv() (*cel.Env, error) {
	return cel.NewEnv(
		cel.HomogeneousAggregateLiterals(),
		cel.EagerlyValidateDeclarations(true),
		cel.DefaultUTCTimeZone(true),
		cel.CrossTypeNumericComparisons(true),
		cel.OptionalTypes(),
		ext.Strings(),
		ext.Sets(),
		ext.Encoders(),
	)
}

func evalBool(env *cel.Env, expr string, obj map[string]any) (bool, error) {
	ast, iss := env.Parse(expr)
	if iss.Err() != nil {
		return false, iss.Err()
	}
	prg, err := env.Program(ast)
	if err != nil {
		return false, err
	}
	v, _, err := prg.ContextEval(context.Background(), obj)
	if err != nil {
		return false, err
	}
	b, ok := v.Value().(bool)
	if !ok {
		return false, fmt.Errorf("%q returned %v, not a bool", expr, v)
	}
	return b, nil
}

// fluxHealth evaluates a kind's expressions on obj as kustomize-controller
// does (RFC 0009): InProgress while status.observedGeneration differs from
// metadata.generation; then inProgress, failed and current in that order;
// InProgress when none holds.
func fluxHealth(env *cel.Env, e healthCheckExpr, u *unstructured.Unstructured) (string, error) {
	obj := u.UnstructuredContent()
	if og, ok, _ := unstructured.NestedInt64(obj, "status", "observedGeneration"); ok && og != u.GetGeneration() {
		return "InProgress", nil
	}
	for _, c := range []struct{ expr, status string }{{e.InProgress, "InProgress"}, {e.Failed, "Failed"}, {e.Current, "Current"}} {
		if c.expr == "" {
			continue
		}
		ok, err := evalBool(env, c.expr, obj)
		if err != nil {
			return "", err
		}
		if ok {
			return c.status, nil
		}
	}
	return "InProgress", nil
}

// argoToFlux is the contract between the two: what Argo CD shows healthy or
// suspended (waiting on a human by design) Flux counts as current.
var argoToFlux = map[string]string{"Healthy": "Current", "Suspended": "Current", "Progressing": "InProgress", "Degraded": "Failed"}

// The Flux expressions agree with the Argo CD health on every fixture. An
// object Lethe has not written status to yet cannot be evaluated (CEL has
// no variable status), which kustomize-controller treats as not yet healthy.
func TestFluxHealthCheckExprs(t *testing.T) {
	env, err := celEnv()
	if err != nil {
		t.Fatal(err)
	}
	exprs := fluxExprs(t)
	for _, kind := range helmchart.ArgoKinds {
		if _, ok := exprs[kind]; !ok {
			t.Errorf("no healthCheckExprs for %s", kind)
		}
	}
	for _, f := range fixtures(t) {
		t.Run(f.path, func(t *testing.T) {
			got, err := fluxHealth(env, exprs[f.kind], f.object)
			if _, hasStatus := f.object.Object["status"]; !hasStatus {
				if err == nil {
					t.Errorf("expected an evaluation error without status, got %s", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := argoToFlux[f.status]; got != want {
				t.Errorf("Flux health = %s; want %s (Argo CD: %s)", got, want, f.status)
			}
		})
	}
}
