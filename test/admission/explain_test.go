package admission

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

// schemaField is one property of a CRD's spec schema, at any depth.
type schemaField struct {
	path        string // as kubectl explain spells it, e.g. spec.rules.fields.name
	description string
	object      bool // has child properties (itself or through array items)
}

// loadCRDs reads the generated CRDs of config/crd/bases.
func loadCRDs(t *testing.T) []*apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot, "config", "crd", "bases", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no CRDs in config/crd/bases: %v", err)
	}
	var crds []*apiextensionsv1.CustomResourceDefinition
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.Unmarshal(b, crd); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		crds = append(crds, crd)
	}
	return crds
}

// walk lists every property under schema, depth first, in name order.
func walk(schema *apiextensionsv1.JSONSchemaProps, path string, out *[]schemaField) {
	children := schema.Properties
	if len(children) == 0 && schema.Items != nil && schema.Items.Schema != nil {
		children = schema.Items.Schema.Properties
	}
	names := make([]string, 0, len(children))
	for n := range children {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		child := children[n]
		f := schemaField{path: path + "." + n, description: strings.TrimSpace(child.Description)}
		f.object = len(child.Properties) > 0 || (child.Items != nil && child.Items.Schema != nil && len(child.Items.Schema.Properties) > 0)
		*out = append(*out, f)
		walk(&child, f.path, out)
	}
}

// kubectl runs the real kubectl of bin/k8s against the envtest apiserver.
func kubectl(t *testing.T, args ...string) string {
	t.Helper()
	full := append([]string{"--kubeconfig", kubeconfig, "--cache-dir", filepath.Join(filepath.Dir(kubeconfig), "kubectl-cache")}, args...)
	var out []byte
	var err error
	// The apiserver publishes a new CRD's OpenAPI a moment after it is
	// established; retry briefly.
	for deadline := time.Now().Add(30 * time.Second); ; {
		out, err = exec.Command(filepath.Join(assetsDir, "kubectl"), full...).CombinedOutput()
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

var explainField = regexp.MustCompile(`^( +)([A-Za-z0-9_$-]+)\t<`)

// explainPaths parses `kubectl explain <x> --recursive` into field paths.
func explainPaths(out, root string) map[string]bool {
	paths := map[string]bool{}
	stack := []string{root}
	inFields := false
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "FIELDS:") {
			inFields = true
			continue
		}
		m := explainField.FindStringSubmatch(line)
		if !inFields || m == nil {
			continue
		}
		depth := len(m[1]) / 2 // two spaces per level, starting at 1
		stack = append(stack[:depth], m[2])
		paths[strings.Join(stack, ".")] = true
	}
	return paths
}

func normalizeSpace(s string) string { return strings.Join(strings.Fields(s), " ") }

// TestExplain checks with the real kubectl that every spec field of every
// kind is documented: every property at every depth has a description in
// the CRD, shows up in `kubectl explain <kind>.spec --recursive`, and (for
// RetentionPolicy, field by field) its description is what `kubectl explain`
// prints.
func TestExplain(t *testing.T) {
	t.Logf("kube-apiserver: %s", serverVersion)
	t.Logf("kubectl: %s", strings.TrimSpace(kubectl(t, "version", "--client")))
	crds := loadCRDs(t)
	if len(crds) != 8 {
		t.Errorf("want 8 CRDs (the eight kinds of Lethe), found %d", len(crds))
	}
	for _, crd := range crds {
		crd := crd
		kind := crd.Spec.Names.Kind
		if len(crd.Spec.Versions) == 0 || crd.Spec.Versions[0].Schema == nil {
			t.Fatalf("%s: CRD without a schema", kind)
		}
		root := crd.Spec.Versions[0].Schema.OpenAPIV3Schema
		spec, ok := root.Properties["spec"]
		if !ok {
			t.Fatalf("%s: no spec in the schema", kind)
		}
		var fields []schemaField
		walk(&spec, "spec", &fields)

		t.Run(kind+"/every spec field has a description", func(t *testing.T) {
			if strings.TrimSpace(root.Description) == "" {
				t.Errorf("%s: the kind itself has no description", kind)
			}
			if strings.TrimSpace(spec.Description) == "" {
				t.Errorf("%s.spec has no description", kind)
			}
			var missing []string
			for _, f := range fields {
				if f.description == "" {
					missing = append(missing, f.path)
				}
			}
			if len(missing) > 0 {
				t.Errorf("%s: %d of %d spec fields have no description (add a doc comment in api/v1alpha1):\n  %s",
					kind, len(missing), len(fields), strings.Join(missing, "\n  "))
			} else {
				t.Logf("%s: all %d spec fields documented", kind, len(fields))
			}
			// Status is written by Lethe, not users; report gaps without failing.
			if status, ok := root.Properties["status"]; ok {
				var sf []schemaField
				walk(&status, "status", &sf)
				var undocumented []string
				for _, f := range sf {
					if f.description == "" {
						undocumented = append(undocumented, f.path)
					}
				}
				if len(undocumented) > 0 {
					t.Logf("note: %s status fields without a description: %s", kind, strings.Join(undocumented, ", "))
				}
			}
		})

		singular := crd.Spec.Names.Singular
		t.Run(kind+"/kubectl explain "+singular+".spec --recursive shows every field", func(t *testing.T) {
			out := kubectl(t, "explain", singular+".spec", "--recursive")
			got := explainPaths(out, "spec")
			var missing []string
			for _, f := range fields {
				if !got[f.path] {
					missing = append(missing, f.path)
				}
			}
			if len(missing) > 0 {
				t.Errorf("kubectl explain %s.spec --recursive lacks %v:\n%s", singular, missing, out)
			}
			if len(got) != len(fields) {
				t.Errorf("kubectl explain shows %d spec fields, the CRD has %d", len(got), len(fields))
			}
			t.Logf("kubectl explain %s.spec --recursive: %d fields, all in the CRD schema", singular, len(got))
		})
	}

	// RetentionPolicy, field by field: each level's explain prints each
	// child's description.
	var rp []schemaField
	for _, crd := range crds {
		if crd.Spec.Names.Kind == "RetentionPolicy" {
			spec := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"]
			rp = append(rp, schemaField{path: "spec", description: spec.Description, object: true})
			walk(&spec, "spec", &rp)
		}
	}
	if len(rp) == 0 {
		t.Fatal("no RetentionPolicy CRD")
	}
	for _, parent := range rp {
		if !parent.object {
			continue
		}
		parent := parent
		t.Run("RetentionPolicy/kubectl explain retentionpolicies."+parent.path, func(t *testing.T) {
			out := normalizeSpace(kubectl(t, "explain", "retentionpolicies."+parent.path))
			n := 0
			for _, f := range rp {
				if !strings.HasPrefix(f.path, parent.path+".") || strings.Contains(f.path[len(parent.path)+1:], ".") {
					continue
				}
				n++
				name := f.path[len(parent.path)+1:]
				if !strings.Contains(out, name+" <") {
					t.Errorf("kubectl explain retentionpolicies.%s does not list %s", parent.path, name)
				}
				if f.description == "" || !strings.Contains(out, normalizeSpace(f.description)) {
					t.Errorf("kubectl explain retentionpolicies.%s does not show the description of %s (%q)", parent.path, name, f.description)
				}
			}
			t.Logf("kubectl explain retentionpolicies.%s: %d fields with their descriptions", parent.path, n)
		})
	}
}
