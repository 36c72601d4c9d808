package admission

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/engine"
	"github.com/lethe-dev/lethe/internal/schedule"
)

// TestSamples applies every sample of config/samples (the kustomization's
// resources, plus the example Secrets of secrets.yaml first) into a fresh
// namespace and expects every object to be accepted — with strict field
// validation, so a misspelt field fails instead of being pruned — and stored
// exactly as written.
func TestSamples(t *testing.T) {
	dir := filepath.Join(repoRoot, "config", "samples")
	var kustomization struct {
		Namespace string   `json:"namespace"`
		Resources []string `json:"resources"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatalf("reading the samples' kustomization: %v", err)
	}
	if err := yaml.Unmarshal(b, &kustomization); err != nil {
		t.Fatalf("parsing config/samples/kustomization.yaml: %v", err)
	}
	if kustomization.Namespace != "" {
		t.Errorf("kustomization.yaml sets namespace %q; the samples must stay namespace-less", kustomization.Namespace)
	}

	// Every retention_v1alpha1_*.yaml is listed, secrets.yaml is not.
	onDisk, _ := filepath.Glob(filepath.Join(dir, "retention_v1alpha1_*.yaml"))
	for i := range onDisk {
		onDisk[i] = filepath.Base(onDisk[i])
	}
	listed := append([]string(nil), kustomization.Resources...)
	sort.Strings(listed)
	if !reflect.DeepEqual(onDisk, listed) {
		t.Errorf("kustomization.yaml lists %v, config/samples holds %v", listed, onDisk)
	}
	for _, r := range kustomization.Resources {
		if r == "secrets.yaml" {
			t.Errorf("secrets.yaml (example data) must not be part of the kustomization")
		}
	}

	// The real kubectl builds the kustomization (its embedded kustomize).
	out, err := exec.Command(filepath.Join(assetsDir, "kubectl"), "kustomize", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl kustomize config/samples: %v\n%s", err, out)
	}
	built := splitYAML(t, "kubectl kustomize", out)

	ns := newNamespace(t, "samples")
	var objs []*unstructured.Unstructured
	secrets := readDocs(t, filepath.Join(dir, "secrets.yaml"))
	for _, u := range secrets {
		if u.GetKind() != "Secret" {
			t.Errorf("secrets.yaml holds a %s; it is for the samples' Secrets only", u.GetKind())
		}
	}
	objs = append(objs, secrets...)
	kinds := map[string]int{}
	var samples []*unstructured.Unstructured
	for _, f := range kustomization.Resources {
		for _, u := range readDocs(t, filepath.Join(dir, f)) {
			if u.GetAPIVersion() != apiVersion {
				t.Errorf("%s: apiVersion %q, want %q", f, u.GetAPIVersion(), apiVersion)
			}
			if want := "retention_v1alpha1_" + strings.ToLower(u.GetKind()) + ".yaml"; want != f {
				t.Errorf("%s holds a %s; it belongs in %s", f, u.GetKind(), want)
			}
			kinds[u.GetKind()]++
			samples = append(samples, u)
		}
	}
	objs = append(objs, samples...)
	if len(built) != len(samples) {
		t.Errorf("kubectl kustomize built %d objects, the listed files hold %d", len(built), len(samples))
	}
	for _, k := range []string{"DataStore", "Dataset", "RetentionPolicy", "DeletionRequest", "LegalHold", "PurgeJob", "Recipient", "ErasureReplay"} {
		if kinds[k] != 1 {
			t.Errorf("want exactly one %s sample, found %d", k, kinds[k])
		}
	}

	ctx := context.Background()
	for _, u := range objs {
		u := u
		t.Run(u.GetKind()+"/"+u.GetName(), func(t *testing.T) {
			if u.GetNamespace() != "" {
				t.Fatalf("sample sets metadata.namespace %q; samples are namespace-less", u.GetNamespace())
			}
			sent := u.DeepCopy()
			u.SetNamespace(ns)
			if err := k8s.Create(ctx, u, strict); err != nil {
				t.Fatalf("sample rejected by the apiserver: %v", err)
			}
			if u.GetKind() == "Secret" {
				t.Logf("created Secret %s/%s", ns, u.GetName())
				return
			}
			got := &unstructured.Unstructured{}
			got.SetGroupVersionKind(u.GroupVersionKind())
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(u), got); err != nil {
				t.Fatalf("reading back: %v", err)
			}
			// Nothing written in the sample was dropped or changed (defaults may add fields).
			if diff := missingFrom(sent.Object["spec"], got.Object["spec"], "spec"); diff != "" {
				t.Errorf("stored object differs from the sample: %s", diff)
			}
			t.Logf("accepted %s %s/%s", u.GetKind(), ns, u.GetName())
		})
	}
}

// readDocs reads a multi-document YAML file into unstructured objects.
func readDocs(t *testing.T, path string) []*unstructured.Unstructured {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	return splitYAML(t, filepath.Base(path), b)
}

// splitYAML splits a YAML stream on document separators, skipping empty
// (comment-only) documents.
func splitYAML(t *testing.T, name string, b []byte) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	for i, doc := range bytes.Split(append([]byte("\n"), b...), []byte("\n---")) {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(doc, &u.Object); err != nil {
			t.Fatalf("%s document %d: %v", name, i, err)
		}
		if len(u.Object) == 0 {
			continue
		}
		out = append(out, u)
	}
	return out
}

// missingFrom reports the first value of want that got lacks or changes.
func missingFrom(want, got interface{}, path string) string {
	switch w := want.(type) {
	case map[string]interface{}:
		g, ok := got.(map[string]interface{})
		if !ok {
			return path + ": not an object in the stored object"
		}
		for k, v := range w {
			gv, ok := g[k]
			if !ok {
				return path + "." + k + ": missing from the stored object (pruned?)"
			}
			if d := missingFrom(v, gv, path+"."+k); d != "" {
				return d
			}
		}
	case []interface{}:
		g, ok := got.([]interface{})
		if !ok || len(g) != len(w) {
			return path + ": list differs in the stored object"
		}
		for i := range w {
			if d := missingFrom(w[i], g[i], path+"["+strconv.Itoa(i)+"]"); d != "" {
				return d
			}
		}
	default:
		if !reflect.DeepEqual(normalizeNumber(want), normalizeNumber(got)) {
			return path + ": stored as " + toString(got) + ", sample says " + toString(want)
		}
	}
	return ""
}

func normalizeNumber(v interface{}) interface{} {
	switch n := v.(type) {
	case int:
		return float64(n)
	case int32:
		return float64(n)
	case int64:
		return float64(n)
	case float32:
		return float64(n)
	}
	return v
}

func toString(v interface{}) string {
	b, _ := yaml.Marshal(v)
	return strings.TrimSpace(string(b))
}

// TestSamplePurgeJobIsAPolicyRun checks that the PurgeJob sample is what
// Lethe itself creates for the RetentionPolicy sample over the Dataset sample
// at the run the PurgeJob's annotation names: same name, operations (rules,
// cutoffs, fields, order), mode, batch size and safety limits.
func TestSamplePurgeJobIsAPolicyRun(t *testing.T) {
	dir := filepath.Join(repoRoot, "config", "samples")
	var ds retentionv1.Dataset
	var rp retentionv1.RetentionPolicy
	var pj retentionv1.PurgeJob
	for f, into := range map[string]interface{}{
		"retention_v1alpha1_dataset.yaml":         &ds,
		"retention_v1alpha1_retentionpolicy.yaml": &rp,
		"retention_v1alpha1_purgejob.yaml":        &pj,
	} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.UnmarshalStrict(b, into); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	runAt, err := time.Parse(time.RFC3339, pj.Annotations["retention.lethe.dev/scheduled-time"])
	if err != nil {
		t.Fatalf("PurgeJob sample: annotation retention.lethe.dev/scheduled-time: %v", err)
	}
	if want := schedule.RunName(rp.Name, runAt); pj.Name != want {
		t.Errorf("PurgeJob sample is named %s; Lethe names that run %s", pj.Name, want)
	}
	if pj.Labels["retention.lethe.dev/policy"] != rp.Name {
		t.Errorf("PurgeJob sample: label retention.lethe.dev/policy = %q, want %q", pj.Labels["retention.lethe.dev/policy"], rp.Name)
	}
	ops, err := engine.PolicyOperations(&rp, &ds, runAt)
	if err != nil {
		t.Fatalf("planning the sample policy's run: %v", err)
	}
	want, _ := yaml.Marshal(retentionv1.PurgeJobSpec{DatasetRef: rp.Spec.DatasetRef, Mode: rp.Spec.Mode, Operations: ops, BatchSize: rp.Spec.BatchSize, Safety: rp.Spec.Safety})
	got, _ := yaml.Marshal(pj.Spec)
	if string(want) != string(got) {
		t.Errorf("PurgeJob sample spec differs from the run Lethe plans for the samples.\nLethe plans:\n%s\nthe sample says:\n%s", want, got)
	} else {
		t.Logf("PurgeJob sample = engine.PolicyOperations(sample policy, sample dataset, %s): %d operations", runAt.Format(time.RFC3339), len(ops))
	}
}
