// Command api-docs writes the API reference (docs/api.md) from the Go types
// of api/v1alpha1: every kind, every field with its Go type, whether it is
// required, its default, its validation (the kubebuilder markers that
// controller-gen turns into the CRDs' OpenAPI schemas and CEL rules) and its
// doc comment, and every named value type with its constants.
//
//	go run ./hack/api-docs docs/api.md    (make api-docs)
//	go run ./hack/api-docs -check docs/api.md
//
// With -check it writes nothing and fails when the file differs from what
// it would write (make verify-generated runs the generator and compares with
// git; hack/api-docs's test does the same in go test).
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/lethe-dev/lethe/internal/apidocs"
)

func main() {
	check := flag.Bool("check", false, "fail if the file is not what would be generated, instead of writing it")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: api-docs [-check] docs/api.md")
		os.Exit(2)
	}
	out := flag.Arg(0)
	root, err := findRoot()
	if err != nil {
		fail(err)
	}
	doc, err := apidocs.Generate(filepath.Join(root, "api", "v1alpha1"))
	if err != nil {
		fail(err)
	}
	if *check {
		have, err := os.ReadFile(out)
		if err != nil {
			fail(err)
		}
		if !bytes.Equal(have, doc) {
			fail(fmt.Errorf("%s is stale: run `make api-docs` and commit it", out))
		}
		return
	}
	if err := os.WriteFile(out, doc, 0o644); err != nil {
		fail(err)
	}
}

// findRoot is the directory holding go.mod, at or above the working directory.
func findRoot() (string, error) {
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
			return "", fmt.Errorf("go.mod not found above the working directory")
		}
		dir = parent
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "api-docs:", err)
	os.Exit(1)
}
