package demo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// kubectl runs the real kubectl (bin/k8s/kubectl) against the demo's
// control plane, in the demo's namespace.
type kubectl struct {
	bin, kubeconfig, namespace string
	p                          *printer
}

// run runs kubectl and returns its combined output.
func (k *kubectl) run(ctx context.Context, stdin []byte, args ...string) (string, error) {
	full := append([]string{"--kubeconfig", k.kubeconfig, "-n", k.namespace}, args...)
	cmd := exec.CommandContext(ctx, k.bin, full...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		if ctx.Err() != nil {
			return out.String(), ctx.Err()
		}
		return out.String(), fmt.Errorf("kubectl %s: %w\n%s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// show prints the command as a reader would type it, runs it and prints its
// output indented.
func (k *kubectl) show(ctx context.Context, stdin []byte, args ...string) (string, error) {
	k.p.cmd("kubectl -n " + k.namespace + " " + strings.Join(quoteArgs(args), " "))
	out, err := k.run(ctx, stdin, args...)
	if err == nil {
		k.p.block(out)
	}
	return out, err
}

func quoteArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, " '{}[]\"$") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out[i] = a
	}
	return out
}

// decodeYAML splits a YAML stream into objects, skipping empty documents.
func decodeYAML(b []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	var out []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, err
		}
		if len(m) == 0 {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: m})
	}
}

// encodeYAML joins objects into one YAML stream.
func encodeYAML(objs []*unstructured.Unstructured) ([]byte, error) {
	var b bytes.Buffer
	for _, o := range objs {
		y, err := yaml.Marshal(o.Object)
		if err != nil {
			return nil, err
		}
		b.WriteString("---\n")
		b.Write(y)
	}
	return b.Bytes(), nil
}
