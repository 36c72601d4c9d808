// Package operations checks the manifests docs/operations.md asks a
// newcomer to apply: each YAML block decodes strictly into its Lethe type
// and the API server (with Lethe's CRDs, their schemas and validation rules)
// accepts it in a server-side dry run.
package operations

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/testenv"
)

var yamlBlock = regexp.MustCompile("(?s)```yaml\n(.*?)```")

func TestGuideManifestsAreAccepted(t *testing.T) {
	root, err := testenv.Root()
	if err != nil {
		t.Fatal(err)
	}
	guide, err := os.ReadFile(filepath.Join(root, "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	var objs []client.Object
	for _, m := range yamlBlock.FindAllStringSubmatch(string(guide), -1) {
		block := dedent(m[1])
		var head struct{ APIVersion, Kind string }
		if err := yaml.Unmarshal([]byte(block), &head); err != nil {
			t.Fatalf("a YAML block of the guide does not parse: %v\n%s", err, block)
		}
		if head.APIVersion != retentionv1.GroupVersion.String() {
			continue
		}
		var o client.Object
		switch head.Kind {
		case "DataStore":
			o = &retentionv1.DataStore{}
		case "Dataset":
			o = &retentionv1.Dataset{}
		case "RetentionPolicy":
			o = &retentionv1.RetentionPolicy{}
		default:
			t.Fatalf("the guide applies a %s; teach this test its type", head.Kind)
		}
		if err := yaml.UnmarshalStrict([]byte(block), o); err != nil {
			t.Errorf("the guide's %s does not decode strictly: %v", head.Kind, err)
			continue
		}
		objs = append(objs, o)
	}
	if len(objs) < 3 {
		t.Fatalf("found %d Lethe manifests in the guide; want the DataStore, Dataset and RetentionPolicy of the first purge", len(objs))
	}

	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	ctx := context.Background()
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}); err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if err := env.Client.Create(ctx, o, client.DryRunAll); err != nil {
			t.Errorf("the API server refuses the guide's %T %s: %v", o, o.GetName(), err)
		}
	}
}

// dedent removes the indentation of a block nested in a list item.
func dedent(s string) string {
	lines := strings.Split(s, "\n")
	indent := -1
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		n := len(l) - len(strings.TrimLeft(l, " "))
		if indent < 0 || n < indent {
			indent = n
		}
	}
	for i, l := range lines {
		if len(l) >= indent {
			lines[i] = l[indent:]
		}
	}
	return strings.Join(lines, "\n")
}
