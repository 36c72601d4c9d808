// Package helmchart renders and lints Lethe's Helm chart (charts/lethe) with
// Helm's own Go library, as `helm template --include-crds` and
// `helm lint --strict` do, so that tests and hack/chart need no helm binary.
package helmchart

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
)

// Dir is the chart's directory in the repository at root.
func Dir(root string) string { return filepath.Join(root, "charts", "lethe") }

// Manifest is one rendered file of the chart: a CRD of crds/ or a template
// of templates/, possibly holding several YAML documents.
type Manifest struct {
	// Source is the file's path in the chart, for example
	// lethe/templates/deployment.yaml or lethe/crds/x.yaml.
	Source string
	// YAML is the rendered content; empty when the template rendered
	// nothing with these values.
	YAML string
}

// Render renders the chart in dir as release name in namespace, with values
// over the chart's values.yaml (validated against values.schema.json). CRDs
// come first, then templates in the order of their names. Helpers and
// NOTES.txt are left out.
func Render(dir, name, namespace string, values map[string]any) ([]Manifest, error) {
	ch, err := loader.Load(dir)
	if err != nil {
		return nil, err
	}
	if values == nil {
		values = map[string]any{}
	}
	top, err := util.ToRenderValuesWithSchemaValidation(ch, values,
		common.ReleaseOptions{Name: name, Namespace: namespace, IsInstall: true, Revision: 1}, nil, false)
	if err != nil {
		return nil, err
	}
	rendered, err := engine.Render(ch, top)
	if err != nil {
		return nil, err
	}
	var out []Manifest
	for _, f := range ch.CRDObjects() {
		out = append(out, Manifest{Source: f.Filename, YAML: string(f.File.Data)})
	}
	names := make([]string, 0, len(rendered))
	for n := range rendered {
		if strings.HasSuffix(n, "NOTES.txt") || strings.HasPrefix(filepath.Base(n), "_") {
			continue
		}
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		out = append(out, Manifest{Source: n, YAML: strings.TrimSpace(rendered[n])})
	}
	return out, nil
}

// Documents splits manifests into their non-empty YAML documents.
func Documents(ms []Manifest) []string {
	var docs []string
	for _, m := range ms {
		for _, d := range strings.Split("\n"+m.YAML, "\n---") {
			if strings.TrimSpace(stripComments(d)) != "" {
				docs = append(docs, strings.TrimSpace(d))
			}
		}
	}
	return docs
}

// stripComments drops whole-line YAML comments, so that a document of
// comments only counts as empty.
func stripComments(doc string) string {
	var b strings.Builder
	for _, line := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// Lint runs Helm's chart linter on dir with values, in namespace, and
// returns its messages of severity warning and above (what
// `helm lint --strict` fails on).
func Lint(dir, namespace string, values map[string]any) []string {
	linter := lint.RunAll(dir, values, namespace)
	var problems []string
	for _, m := range linter.Messages {
		if m.Severity >= support.WarningSev {
			problems = append(problems, m.Error())
		}
	}
	return problems
}

// String renders manifests as one multi-document YAML stream, each
// document preceded by its source, like `helm template`.
func String(ms []Manifest) string {
	var b strings.Builder
	for _, m := range ms {
		if strings.TrimSpace(stripComments(m.YAML)) == "" {
			continue
		}
		fmt.Fprintf(&b, "---\n# Source: %s\n%s\n", m.Source, strings.TrimSpace(m.YAML))
	}
	return b.String()
}
