package apidocs

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// TestReferenceIsCurrent fails when docs/api.md is not what `make api-docs`
// writes from api/v1alpha1 today, so `make test` catches a stale reference.
func TestReferenceIsCurrent(t *testing.T) {
	root := filepath.Join("..", "..")
	want, err := Generate(filepath.Join(root, "api", "v1alpha1"))
	if err != nil {
		t.Fatal(err)
	}
	have, err := os.ReadFile(filepath.Join(root, "docs", "api.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(have, want) {
		t.Fatal("docs/api.md is stale: run `make api-docs` and commit it")
	}
}

// TestEveryKindAndFieldDocumented checks the generated reference against the
// parsed package: every kind has a section, every JSON field of every
// struct type a row, every named value type a section.
func TestEveryKindAndFieldDocumented(t *testing.T) {
	p, err := Load(filepath.Join("..", "..", "api", "v1alpha1"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"DataStore", "Dataset", "RetentionPolicy", "PurgeJob", "DeletionRequest", "LegalHold", "Recipient", "ErasureReplay"}
	if !slices.Equal(p.Kinds, want) {
		t.Errorf("kinds %v; want the eight of Lethe %v", p.Kinds, want)
	}
	doc := string(Render(p))
	for _, k := range p.Kinds {
		if !strings.Contains(doc, "\n## "+k+"\n") {
			t.Errorf("no section for kind %s", k)
		}
	}
	for n, ty := range p.Types {
		if strings.HasSuffix(n, "List") || ty.Underlying == "interface{}" {
			continue
		}
		sec := sectionOf(doc, n)
		if sec == "" {
			t.Errorf("no section for type %s", n)
			continue
		}
		for _, f := range ty.Fields {
			if f.Name == "" || f.Inline {
				continue
			}
			if !strings.Contains(sec, "| `"+f.Name+"` |") {
				t.Errorf("type %s: no row for field %s", n, f.Name)
			}
			if f.Doc == "" && f.Name != "metadata" {
				t.Errorf("type %s: field %s has no doc comment (it becomes kubectl explain)", n, f.Name)
			}
		}
	}
	for _, s := range []string{
		"| `timeZone` | [TimeZone](#timezone) | no | `UTC` |",   // default
		"one of `Forbid`, `Replace`",                            // enum
		"rule names must be unique (CEL `self.rules.all(r, ",    // CEL on a struct
		"| `rules` | [][RetentionRule](#retentionrule) | yes |", // required list of a linked type
	} {
		if !strings.Contains(doc, s) {
			t.Errorf("reference lacks %q", s)
		}
	}
}

func sectionOf(doc, name string) string {
	for _, h := range []string{"\n## " + name + "\n", "\n### " + name + "\n"} {
		if i := strings.Index(doc, h); i >= 0 {
			rest := doc[i+len(h):]
			if j := strings.Index(rest, "\n#"); j >= 0 {
				return rest[:j]
			}
			return rest
		}
	}
	return ""
}

func TestValidationItems(t *testing.T) {
	for _, tc := range []struct {
		markers []Marker
		want    []string
	}{
		{nil, nil},
		{[]Marker{"optional", "kubebuilder:default=3"}, nil},
		{[]Marker{"kubebuilder:validation:Minimum=0", "kubebuilder:validation:Maximum=100"}, []string{"value 0–100"}},
		{[]Marker{"kubebuilder:validation:MaxItems=64", "listType=set"}, []string{"items ≤ 64", "items unique (set)"}},
		{[]Marker{"kubebuilder:validation:MinLength=1"}, []string{"length ≥ 1"}},
		{[]Marker{"kubebuilder:validation:Enum=Forbid;Replace"}, []string{"one of `Forbid`, `Replace`"}},
		{[]Marker{"kubebuilder:validation:Pattern=`^[a-z]+$`"}, []string{"pattern `^[a-z]+$`"}},
		{[]Marker{"listType=map", "listMapKey=name"}, []string{"list map", "keyed by `name`"}},
		{[]Marker{`kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec is immutable, \"really\""`},
			[]string{"spec is immutable, \"really\" (CEL `self == oldSelf`)"}},
		{[]Marker{`kubebuilder:validation:XValidation:rule="size(self) > 0"`}, []string{"CEL `size(self) > 0`"}},
		{[]Marker{"kubebuilder:validation:UniqueItems=true"}, []string{"`kubebuilder:validation:UniqueItems=true`"}},
	} {
		if got := validationItems(tc.markers); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("validationItems(%q) = %q; want %q", tc.markers, got, tc.want)
		}
	}
}

func TestSplitDoc(t *testing.T) {
	prose, markers := splitDoc("Name of the rule,\nunique.\n+required\n\nSecond paragraph.\n  +kubebuilder:validation:MaxLength=3\n")
	if prose != "Name of the rule, unique.\n\nSecond paragraph." {
		t.Errorf("prose %q", prose)
	}
	if !reflect.DeepEqual(markers, []Marker{"required", "kubebuilder:validation:MaxLength=3"}) {
		t.Errorf("markers %q", markers)
	}
}

func TestCell(t *testing.T) {
	if got := cell("a || b\n\nc\nd"); got != `a \|\| b<br><br>c d` {
		t.Errorf("cell = %q", got)
	}
}
