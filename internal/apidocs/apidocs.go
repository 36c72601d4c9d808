// Package apidocs generates Lethe's API reference (docs/api.md, `make
// api-docs`) from the Go source of api/v1alpha1 with go/parser and go/doc:
// the doc comments (what kubectl explain shows), and the kubebuilder markers
// (required, defaults, enums, lengths, patterns, list types, CEL rules) that
// controller-gen turns into the CRDs of config/crd/bases. Reading the
// markers rather than the CRDs keeps a named type's validation in one place
// (its own section) instead of repeated on every field that uses it.
package apidocs

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/doc"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Marker is one +marker line of a doc comment, without the +.
type Marker string

// Field is one JSON field of a struct type.
type Field struct {
	Name     string // JSON name; "" for an inline embedding
	GoName   string
	Type     ast.Expr
	Doc      string
	Markers  []Marker
	Inline   bool
	Optional bool
}

// Type is one named type of the package.
type Type struct {
	Name    string
	Doc     string
	Markers []Marker
	Struct  bool
	Fields  []Field
	// Underlying is the Go type of a non-struct type (string, int64…).
	Underlying string
	Consts     []Const
}

// Const is a constant of a named value type.
type Const struct {
	Name, Value, Doc string
}

// Package is the parsed API package.
type Package struct {
	Group, Version string
	Types          map[string]*Type
	Kinds          []string // root types, not lists, in the order of their files
}

// Load parses the Go package in dir (test files excluded).
func Load(dir string) (*Package, error) {
	fset := token.NewFileSet()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	// Files in name order, so the kinds come in the order of their files.
	var files []*ast.File
	pkgName := ""
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || !strings.HasSuffix(n, ".go") || strings.HasSuffix(n, "_test.go") || strings.HasPrefix(n, "zz_generated") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, n), nil, parser.ParseComments)
		if err != nil {
			return nil, err
		}
		if pkgName != "" && f.Name.Name != pkgName {
			return nil, fmt.Errorf("%s: want one package, found %s and %s", dir, pkgName, f.Name.Name)
		}
		pkgName = f.Name.Name
		files = append(files, f)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%s: no Go files", dir)
	}
	dp, err := doc.NewFromFiles(fset, files, "github.com/lethe-dev/lethe/api/v1alpha1", doc.PreserveAST)
	if err != nil {
		return nil, err
	}
	p := &Package{Types: map[string]*Type{}}
	p.Group, p.Version = groupVersion(dp.Doc, files)
	for _, dt := range dp.Types {
		ts := typeSpec(dt)
		if ts == nil {
			continue
		}
		prose, markers := splitDoc(rawDoc(dt))
		t := &Type{Name: dt.Name, Doc: prose, Markers: markers}
		switch u := ts.Type.(type) {
		case *ast.StructType:
			t.Struct = true
			for _, f := range u.Fields.List {
				t.Fields = append(t.Fields, field(f))
			}
		default:
			t.Underlying = exprString(u)
		}
		for _, c := range dt.Consts {
			for _, spec := range c.Decl.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, n := range vs.Names {
					if !n.IsExported() || i >= len(vs.Values) {
						continue
					}
					d, _ := splitDoc(commentText(vs.Doc))
					if d == "" && len(c.Decl.Specs) == 1 {
						d, _ = splitDoc(c.Doc)
					}
					t.Consts = append(t.Consts, Const{Name: n.Name, Value: exprString(vs.Values[i]), Doc: d})
				}
			}
		}
		p.Types[t.Name] = t
	}
	// Kinds in the order of their files (datastore, dataset, … sorted by
	// file name), root objects only.
	for _, f := range files {
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.TYPE {
				continue
			}
			for _, s := range gd.Specs {
				ts := s.(*ast.TypeSpec)
				t := p.Types[ts.Name.Name]
				if t != nil && t.has("kubebuilder:object:root") && !strings.HasSuffix(t.Name, "List") {
					p.Kinds = append(p.Kinds, t.Name)
				}
			}
		}
	}
	sort.SliceStable(p.Kinds, func(i, j int) bool { return kindRank(p.Kinds[i]) < kindRank(p.Kinds[j]) })
	return p, nil
}

// kindOrder is the order of the reference: where data lives, what it is,
// how long it is kept, how it is executed, who asks, what keeps it, who
// else holds it, what replays erasures after a restore. A kind
// not listed comes last.
var kindOrder = []string{"DataStore", "Dataset", "RetentionPolicy", "PurgeJob", "DeletionRequest", "LegalHold", "Recipient", "ErasureReplay"}

func kindRank(k string) int {
	for i, n := range kindOrder {
		if n == k {
			return i
		}
	}
	return len(kindOrder)
}

func typeSpec(dt *doc.Type) *ast.TypeSpec {
	for _, s := range dt.Decl.Specs {
		if ts, ok := s.(*ast.TypeSpec); ok && ts.Name.Name == dt.Name {
			return ts
		}
	}
	return nil
}

// rawDoc is the type's whole comment with marker lines (go/doc keeps them).
func rawDoc(dt *doc.Type) string {
	if ts := typeSpec(dt); ts != nil && ts.Doc != nil {
		return commentText(ts.Doc)
	}
	if dt.Decl.Doc != nil {
		return commentText(dt.Decl.Doc)
	}
	return dt.Doc
}

func commentText(g *ast.CommentGroup) string {
	if g == nil {
		return ""
	}
	// CommentGroup.Text drops //+marker lines without a space; read the raw
	// lines instead.
	var b strings.Builder
	for _, c := range g.List {
		s := strings.TrimPrefix(c.Text, "//")
		s = strings.TrimPrefix(s, " ")
		b.WriteString(s + "\n")
	}
	return b.String()
}

var groupRE = regexp.MustCompile(`\+groupName=(\S+)`)

func groupVersion(pkgDoc string, files []*ast.File) (string, string) {
	group := ""
	for _, f := range files {
		for _, cg := range f.Comments {
			if m := groupRE.FindStringSubmatch(commentText(cg)); m != nil {
				group = m[1]
			}
		}
	}
	if m := groupRE.FindStringSubmatch(pkgDoc); m != nil {
		group = m[1]
	}
	version := ""
	if len(files) > 0 {
		version = files[0].Name.Name
	}
	return group, version
}

func field(f *ast.Field) Field {
	out := Field{Type: f.Type}
	if len(f.Names) > 0 {
		out.GoName = f.Names[0].Name
	} else {
		out.GoName = exprString(f.Type)
	}
	if f.Tag != nil {
		tag, _ := strconv.Unquote(f.Tag.Value)
		j := reflect.StructTag(tag).Get("json")
		parts := strings.Split(j, ",")
		out.Name = parts[0]
		for _, o := range parts[1:] {
			switch o {
			case "inline":
				out.Inline = true
			case "omitempty", "omitzero":
				out.Optional = true
			}
		}
	}
	out.Doc, out.Markers = splitDoc(commentText(f.Doc))
	return out
}

// splitDoc separates a comment into prose (paragraphs joined, lines
// unwrapped) and marker lines.
func splitDoc(text string) (string, []Marker) {
	var prose []string
	var markers []Marker
	for _, line := range strings.Split(text, "\n") {
		l := strings.TrimSpace(line)
		if strings.HasPrefix(l, "+") {
			markers = append(markers, Marker(strings.TrimPrefix(l, "+")))
			continue
		}
		prose = append(prose, line)
	}
	return unwrap(strings.Join(prose, "\n")), markers
}

// unwrap joins wrapped lines into paragraphs separated by a blank line;
// indented lines (code in a comment) are kept as they are.
func unwrap(s string) string {
	var paras []string
	var cur []string
	flush := func() {
		if len(cur) > 0 {
			paras = append(paras, strings.Join(cur, " "))
			cur = nil
		}
	}
	for _, line := range strings.Split(s, "\n") {
		t := strings.TrimSpace(line)
		if t == "" {
			flush()
			continue
		}
		cur = append(cur, t)
	}
	flush()
	return strings.Join(paras, "\n\n")
}

func (t *Type) has(name string) bool {
	for _, m := range t.Markers {
		if markerName(m) == name {
			return true
		}
	}
	return false
}

func markerName(m Marker) string {
	s := string(m)
	if i := strings.IndexAny(s, "=:"); i >= 0 {
		// kubebuilder:validation:Enum=a;b: the name runs to the '='.
		if j := strings.Index(s, "="); j >= 0 {
			return s[:j]
		}
		return s
	}
	return s
}

func markerValue(m Marker) string {
	s := string(m)
	if j := strings.Index(s, "="); j >= 0 {
		return s[j+1:]
	}
	return ""
}

func exprString(e ast.Expr) string {
	switch x := e.(type) {
	case *ast.Ident:
		return x.Name
	case *ast.StarExpr:
		return "*" + exprString(x.X)
	case *ast.ArrayType:
		return "[]" + exprString(x.Elt)
	case *ast.MapType:
		return "map[" + exprString(x.Key) + "]" + exprString(x.Value)
	case *ast.SelectorExpr:
		return exprString(x.X) + "." + x.Sel.Name
	case *ast.BasicLit:
		return x.Value
	case *ast.UnaryExpr:
		return x.Op.String() + exprString(x.X)
	case *ast.BinaryExpr:
		return exprString(x.X) + " " + x.Op.String() + " " + exprString(x.Y)
	case *ast.CallExpr:
		args := make([]string, len(x.Args))
		for i, a := range x.Args {
			args[i] = exprString(a)
		}
		return exprString(x.Fun) + "(" + strings.Join(args, ", ") + ")"
	case *ast.ParenExpr:
		return "(" + exprString(x.X) + ")"
	case *ast.StructType:
		return "struct{…}"
	case *ast.InterfaceType:
		return "interface{}"
	default:
		var b bytes.Buffer
		fmt.Fprintf(&b, "%T", e)
		return b.String()
	}
}
