// Package admission proves that Lethe's CustomResourceDefinitions reject bad
// manifests at admission time — OpenAPI schemas, enums and CEL rules evaluated
// by a real kube-apiserver backed by a real etcd (envtest) — and that the
// samples in config/samples are accepted and documented.
//
// The control plane is built from Go modules by `make controlplane`
// (hack/build-controlplane.sh) into bin/k8s; nothing is downloaded and nothing
// is skipped: missing binaries fail the package.
package admission

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/lethe-dev/lethe/internal/testenv"
)

const (
	group      = "retention.lethe.dev"
	apiVersion = group + "/v1alpha1"
)

var (
	// repoRoot is the module root (the directory holding go.mod).
	repoRoot string
	// assetsDir holds kube-apiserver, etcd and kubectl.
	assetsDir string
	cfg       *rest.Config
	k8s       client.Client
	// kubeconfig is a kubeconfig file for the envtest apiserver, for kubectl.
	kubeconfig string
	// serverVersion is the apiserver's reported version, logged once.
	serverVersion string
	// testEnv is the running control plane (for clients of other users).
	testEnv *testenv.Env
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	repoRoot, err = testenv.Root()
	if err != nil {
		fmt.Fprintln(os.Stderr, "admission tests:", err)
		return 1
	}
	env, err := testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "admission tests:", err)
		return 1
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "admission tests: stopping envtest:", err)
		}
	}()
	assetsDir, cfg, testEnv = env.Assets, env.Config, env
	if _, err := os.Stat(filepath.Join(assetsDir, "kubectl")); err != nil {
		fmt.Fprintln(os.Stderr, "admission tests: kubectl missing in", assetsDir, "- run `make controlplane`")
		return 1
	}

	k8s, err = client.New(cfg, client.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "admission tests: client:", err)
		return 1
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "admission tests: discovery client:", err)
		return 1
	}
	v, err := dc.ServerVersion()
	if err != nil {
		fmt.Fprintln(os.Stderr, "admission tests: server version:", err)
		return 1
	}
	serverVersion = fmt.Sprintf("gitVersion=%s major=%q minor=%q goVersion=%s platform=%s (at %s)",
		v.GitVersion, v.Major, v.Minor, v.GoVersion, v.Platform, cfg.Host)
	fmt.Println("kube-apiserver version:", serverVersion)

	dir, err := os.MkdirTemp("", "lethe-admission-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "admission tests:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if kubeconfig, err = env.Kubeconfig(dir); err != nil {
		fmt.Fprintln(os.Stderr, "admission tests: kubeconfig:", err)
		return 1
	}

	return m.Run()
}

// newNamespace creates a fresh namespace for one test and deletes it after.
func newNamespace(t *testing.T, prefix string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}
	if err := k8s.Create(context.Background(), ns); err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), ns) })
	return ns.Name
}

// decode parses one YAML document into an unstructured object.
func decode(t *testing.T, manifest string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(manifest), &u.Object); err != nil {
		t.Fatalf("test manifest is not valid YAML: %v\n%s", err, manifest)
	}
	if u.Object == nil {
		t.Fatalf("test manifest is empty")
	}
	return u
}

// strict makes the apiserver reject unknown fields instead of silently
// pruning them (as kubectl apply does by default), so that a misspelt field in
// a test manifest or a sample cannot pass for a valid one.
var strict = client.FieldValidation(metav1.FieldValidationStrict)
