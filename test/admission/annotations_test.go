package admission

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// lethePrefixed finds annotation, label and finalizer names of Lethe's
// domain in text: retention.lethe.dev/<name>, not preceded by a dot or word
// character (kubectl's deletionrequest.retention.lethe.dev/<object> names an
// object, not a key).
var lethePrefixed = regexp.MustCompile(`(?:^|[^.\w])(retention\.lethe\.dev/[A-Za-z0-9._-]*[A-Za-z0-9])`)

// apiVersionName is the version part of apiVersion: retention.lethe.dev/v1alpha1.
var apiVersionName = regexp.MustCompile(`^retention\.lethe\.dev/v\d+((alpha|beta)\d+)?$`)

// definedKeys collects the string constants of the module's Go code (tests
// excluded) whose value is a retention.lethe.dev/ key: the annotations,
// labels and finalizers Lethe actually reads or writes.
func definedKeys(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(repoRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "bin", "vendor", "testdata":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			g, ok := decl.(*ast.GenDecl)
			if !ok || g.Tok != token.CONST {
				continue
			}
			for _, spec := range g.Specs {
				for i, v := range spec.(*ast.ValueSpec).Values {
					lit, ok := v.(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						continue
					}
					s, err := strconv.Unquote(lit.Value)
					if err == nil && strings.HasPrefix(s, "retention.lethe.dev/") && !apiVersionName.MatchString(s) {
						rel, _ := filepath.Rel(repoRoot, path)
						out[s] = rel + ": " + spec.(*ast.ValueSpec).Names[i].Name
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDocumentedAnnotationsExist fails when the API's doc comments (and so
// `kubectl explain`), the CRDs, RBAC, samples, admission policies or the
// README and docs/ name a retention.lethe.dev/ annotation, label or finalizer that
// no Go constant defines: a documented key that the code does not read is
// accepted by the API server and silently ignored (as
// retention.lethe.dev/approve once was, for retention.lethe.dev/approved-by).
func TestDocumentedAnnotationsExist(t *testing.T) {
	defined := definedKeys(t)
	for _, want := range []string{"retention.lethe.dev/approved-by", "retention.lethe.dev/requested-by"} {
		if defined[want] == "" {
			t.Fatalf("no Go constant defines %s; the collection of defined keys is broken (found %d: %v)", want, len(defined), defined)
		}
	}
	var files []string
	for _, dir := range []string{"api", "config"} {
		err := filepath.WalkDir(filepath.Join(repoRoot, dir), func(path string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && (strings.HasSuffix(path, ".go") || strings.HasSuffix(path, ".yaml")) {
				files = append(files, path)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	docs, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	if err != nil || len(docs) == 0 {
		t.Fatalf("no docs/*.md found (%v): the scan is broken", err)
	}
	files = append(files, filepath.Join(repoRoot, "README.md"))
	files = append(files, docs...)
	mentioned := 0
	for _, path := range files {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(repoRoot, path)
		for n, line := range strings.Split(string(b), "\n") {
			for _, m := range lethePrefixed.FindAllStringSubmatch(line, -1) {
				key := m[1]
				if apiVersionName.MatchString(key) {
					continue
				}
				mentioned++
				if defined[key] == "" {
					known := make([]string, 0, len(defined))
					for k := range defined {
						known = append(known, k)
					}
					slices.Sort(known)
					t.Errorf("%s:%d names %s, which no Go constant defines (Lethe ignores it); defined: %s", rel, n+1, key, strings.Join(known, ", "))
				}
			}
		}
	}
	if mentioned == 0 {
		t.Fatal("found no retention.lethe.dev/ key in api/, config/ or README.md: the scan is broken")
	}
}
