// Command chart keeps Lethe's Helm chart (charts/lethe) in step with config/
// and renders or lints it with Helm's Go library, so no helm binary is
// needed:
//
//	go run ./hack/chart sync       # part of make manifests (internal/helmchart.Sync)
//	go run ./hack/chart lint       # make helm-lint: helm lint --strict, with the default and with every optional value
//	go run ./hack/chart template [-name lethe] [-namespace lethe-system] [-f values.yaml]...
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/lethe-dev/lethe/internal/helmchart"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: chart sync|lint|template [flags]")
		os.Exit(2)
	}
	root, err := repoRoot()
	if err == nil {
		switch os.Args[1] {
		case "sync":
			err = helmchart.Sync(root)
		case "lint":
			err = lint(root)
		case "template":
			err = template(root, os.Args[2:])
		default:
			err = fmt.Errorf("unknown command %q: want sync, lint or template", os.Args[1])
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "chart:", err)
		os.Exit(1)
	}
}

// repoRoot is the directory holding go.mod, at or above the working one.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

func lint(root string) error {
	names := make([]string, 0, len(helmchart.LintValues))
	for n := range helmchart.LintValues {
		names = append(names, n)
	}
	sort.Strings(names)
	bad := 0
	for _, name := range names {
		problems := helmchart.Lint(helmchart.Dir(root), "lethe-system", helmchart.LintValues[name])
		for _, p := range problems {
			fmt.Printf("%s: %s\n", name, p)
		}
		bad += len(problems)
	}
	if bad > 0 {
		return fmt.Errorf("helm lint: %d problems", bad)
	}
	fmt.Printf("helm lint: charts/lethe is clean with %s\n", strings.Join(names, " and with "))
	return nil
}

type files []string

func (f *files) String() string     { return strings.Join(*f, ",") }
func (f *files) Set(v string) error { *f = append(*f, v); return nil }

func template(root string, args []string) error {
	fs := flag.NewFlagSet("template", flag.ExitOnError)
	name := fs.String("name", "lethe", "release name")
	namespace := fs.String("namespace", "lethe-system", "release namespace")
	var valueFiles files
	fs.Var(&valueFiles, "f", "values file (repeatable; later files win)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	values := map[string]any{}
	for _, f := range valueFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		var v map[string]any
		if err := yaml.Unmarshal(b, &v); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		values = merge(values, v)
	}
	ms, err := helmchart.Render(helmchart.Dir(root), *name, *namespace, values)
	if err != nil {
		return err
	}
	fmt.Print(helmchart.String(ms))
	return nil
}

// merge merges b over a, recursing into maps, as helm -f does.
func merge(a, b map[string]any) map[string]any {
	out := make(map[string]any, len(a))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		if bm, ok := v.(map[string]any); ok {
			if am, ok := out[k].(map[string]any); ok {
				out[k] = merge(am, bm)
				continue
			}
		}
		out[k] = v
	}
	return out
}
