// Package testenv starts a real control plane (kube-apiserver and etcd from
// bin/k8s, built by hack/build-controlplane.sh) with Lethe's CRDs installed,
// for tests in any package.
package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

// Env is a running control plane.
type Env struct {
	Config *rest.Config
	Client client.Client
	Scheme *runtime.Scheme
	Root   string // repository root
	Assets string // directory of kube-apiserver, etcd and kubectl
	env    *envtest.Environment

	mu            sync.Mutex
	managerConfig *rest.Config // see ManagerConfig
}

// Root finds the repository root (the directory holding go.mod) from the
// working directory.
func Root() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			if _, err := os.Stat(filepath.Join(dir, "PROJECT")); err == nil {
				return dir, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("repository root (go.mod and PROJECT) not found above the working directory")
		}
		dir = parent
	}
}

// Start starts kube-apiserver and etcd with the CRDs of config/crd/bases.
// It fails, saying what to run, when the binaries are missing.
func Start() (*Env, error) {
	root, err := Root()
	if err != nil {
		return nil, err
	}
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		assets = filepath.Join(root, "bin", "k8s")
	}
	for _, b := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(assets, b)); err != nil {
			return nil, fmt.Errorf("control plane binary %s missing in %s: run `make controlplane` (builds kube-apiserver, etcd and kubectl from Go modules)", b, assets)
		}
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := retentionv1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory:    assets,
		CRDDirectoryPaths:        []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing:    true,
		Scheme:                   scheme,
		ControlPlaneStartTimeout: 2 * time.Minute, // 2 shared cores: a cold start can be slow
		ControlPlaneStopTimeout:  time.Minute,
	}
	// Test etcd keeps its data in a throwaway directory: skip fsync, as the
	// datastores of the test harness do, so that API writes measure the
	// API server and Lethe rather than the shared disk.
	env.ControlPlane.Etcd = &envtest.Etcd{}
	env.ControlPlane.Etcd.Configure().Set("unsafe-no-fsync", "true")
	start := time.Now()
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting envtest control plane from %s: %w", assets, err)
	}
	fmt.Printf("envtest: kube-apiserver and etcd from %s started in %s, %d CRDs installed\n",
		assets, time.Since(start).Round(time.Millisecond), len(env.CRDs))
	// Tests and benchmarks write in bursts; client-go's default limits
	// (5 QPS) would measure the client, not Lethe.
	cfg.QPS, cfg.Burst = 1000, 2000
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		_ = env.Stop()
		return nil, err
	}
	return &Env{Config: cfg, Client: c, Scheme: scheme, Root: root, Assets: assets, env: env}, nil
}

// Stop stops the control plane.
func (e *Env) Stop() error { return e.env.Stop() }

// Kubeconfig writes a kubeconfig for an admin user of the control plane and
// returns its path (for running kubectl against it).
func (e *Env) Kubeconfig(dir string) (string, error) {
	user, err := e.env.ControlPlane.AddUser(envtest.User{Name: "lethe-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return "", err
	}
	data, err := user.KubeConfig()
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "kubeconfig")
	return path, os.WriteFile(path, data, 0o600)
}

// UserClient returns a client authenticated as the named user (member of
// system:masters), for tests of what the API server records about who did what.
func (e *Env) UserClient(name string) (client.Client, error) {
	return e.UserClientInGroups(name, "system:masters")
}

// UserClientInGroups returns a client authenticated as the named user in
// exactly these groups: without system:masters, RBAC decides what it may do.
func (e *Env) UserClientInGroups(name string, groups ...string) (client.Client, error) {
	user, err := e.env.ControlPlane.AddUser(envtest.User{Name: name, Groups: groups}, nil)
	if err != nil {
		return nil, err
	}
	return client.New(user.Config(), client.Options{Scheme: e.Scheme})
}

// UserConfig returns a REST config authenticated as the named user, member of
// the given groups only (not system:masters): it can do what RBAC grants
// that user and nothing more, as a namespace user or a manager bound to
// Roles would.
func (e *Env) UserConfig(name string, groups ...string) (*rest.Config, error) {
	user, err := e.env.ControlPlane.AddUser(envtest.User{Name: name, Groups: groups}, nil)
	if err != nil {
		return nil, err
	}
	cfg := user.Config()
	cfg.QPS, cfg.Burst = e.Config.QPS, e.Config.Burst
	return cfg, nil
}

// UserKubeconfig writes a kubeconfig for the named user, member of exactly
// these groups (RBAC decides what it may do), as dir/<name>.kubeconfig and
// returns its path: for running a command line tool (kubectl, kubectl-lethe)
// as that user.
func (e *Env) UserKubeconfig(dir, name string, groups ...string) (string, error) {
	user, err := e.env.ControlPlane.AddUser(envtest.User{Name: name, Groups: groups}, nil)
	if err != nil {
		return "", err
	}
	data, err := user.KubeConfig()
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, name+".kubeconfig")
	return path, os.WriteFile(path, data, 0o600)
}
