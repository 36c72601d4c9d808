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
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"
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
	testEnv   *envtest.Environment
	cfg       *rest.Config
	k8s       client.Client
	// kubeconfig is a kubeconfig file for the envtest apiserver, for kubectl.
	kubeconfig string
	// serverVersion is the apiserver's reported version, logged once.
	serverVersion string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	repoRoot, err = findRepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "admission tests:", err)
		return 1
	}
	assetsDir = filepath.Join(repoRoot, "bin", "k8s")
	var missing []string
	for _, b := range []string{"kube-apiserver", "etcd", "kubectl"} {
		if fi, err := os.Stat(filepath.Join(assetsDir, b)); err != nil || fi.Mode()&0o111 == 0 {
			missing = append(missing, filepath.Join(assetsDir, b))
		}
	}
	if len(missing) > 0 {
		fmt.Fprintf(os.Stderr, "admission tests: control-plane binaries missing: %s\n"+
			"run `make controlplane` (builds kube-apiserver, etcd and kubectl from Go modules into bin/k8s) and try again\n",
			strings.Join(missing, ", "))
		return 1
	}
	// The binaries in bin/k8s are the ones under test; do not let an
	// unrelated KUBEBUILDER_ASSETS from the environment win over them.
	os.Setenv("KUBEBUILDER_ASSETS", assetsDir)

	testEnv = &envtest.Environment{
		BinaryAssetsDirectory:    assetsDir,
		CRDDirectoryPaths:        []string{filepath.Join(repoRoot, "config", "crd", "bases")},
		ErrorIfCRDPathMissing:    true,
		ControlPlaneStartTimeout: 2 * time.Minute, // 2 shared cores: a cold start can be slow
		ControlPlaneStopTimeout:  time.Minute,
	}
	start := time.Now()
	cfg, err = testEnv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "admission tests: starting envtest (kube-apiserver + etcd from bin/k8s):", err)
		return 1
	}
	defer func() {
		if err := testEnv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "admission tests: stopping envtest:", err)
		}
	}()
	fmt.Printf("envtest: kube-apiserver and etcd from %s started in %s, %d CRDs installed\n",
		assetsDir, time.Since(start).Round(time.Millisecond), len(testEnv.CRDs))

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

	admin, err := testEnv.AddUser(envtest.User{Name: "lethe-admission-test", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "admission tests: adding a kubectl user:", err)
		return 1
	}
	kc, err := admin.KubeConfig()
	if err != nil {
		fmt.Fprintln(os.Stderr, "admission tests: kubeconfig:", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "lethe-admission-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "admission tests:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
		fmt.Fprintln(os.Stderr, "admission tests:", err)
		return 1
	}

	return m.Run()
}

// findRepoRoot walks up from the test's working directory to go.mod.
func findRepoRoot() (string, error) {
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
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
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
