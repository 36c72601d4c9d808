package testenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"
)

// ManagerConfig returns a rest.Config for the manager's identity as `make
// deploy` installs it: the ServiceAccount of config/rbac/service_account.yaml
// (with config/default's namespace and name prefix), not a member of
// system:masters, bound only by the ClusterRoleBinding of
// config/rbac/role_binding.yaml to the ClusterRole of config/rbac/role.yaml.
// Both are read from those files (the role is generated from the
// +kubebuilder:rbac markers by `make manifests`), so a test that runs the
// manager with this config fails where the shipped RBAC falls short. The
// leader-election Role is not bound: tests run without leader election.
// The objects are created once per Env.
func (e *Env) ManagerConfig() (*rest.Config, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.managerConfig != nil {
		return rest.CopyConfig(e.managerConfig), nil
	}
	var kustomization struct {
		Namespace  string `json:"namespace"`
		NamePrefix string `json:"namePrefix"`
	}
	var sa struct {
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	var role rbacv1.ClusterRole
	var binding rbacv1.ClusterRoleBinding
	for file, into := range map[string]any{
		"config/default/kustomization.yaml": &kustomization,
		"config/rbac/service_account.yaml":  &sa,
		"config/rbac/role.yaml":             &role,
		"config/rbac/role_binding.yaml":     &binding,
	} {
		data, err := os.ReadFile(filepath.Join(e.Root, file))
		if err != nil {
			return nil, err
		}
		if err := yaml.Unmarshal(data, into); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
	}
	if role.Kind != "ClusterRole" || len(role.Rules) == 0 || binding.RoleRef.Name != role.Name {
		return nil, fmt.Errorf("config/rbac: expected the ClusterRole of role.yaml, with rules, bound by role_binding.yaml")
	}
	// What kustomize does with config/default: prefix every name, put
	// namespaced subjects in its namespace.
	ns, prefix := kustomization.Namespace, kustomization.NamePrefix
	saName := prefix + sa.Metadata.Name
	role.Name = prefix + role.Name
	binding.Name = prefix + binding.Name
	binding.RoleRef.Name = role.Name
	for i := range binding.Subjects {
		binding.Subjects[i].Namespace = ns
		binding.Subjects[i].Name = prefix + binding.Subjects[i].Name
	}
	ctx := context.Background()
	for _, o := range []client.Object{&role, &binding} {
		if err := e.Client.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("creating %T %s from config/rbac: %w", o, o.GetName(), err)
		}
	}
	// A ServiceAccount's token authenticates as this user name and these
	// groups; a client certificate says the same.
	userName := "system:serviceaccount:" + ns + ":" + saName
	user, err := e.env.ControlPlane.AddUser(envtest.User{Name: userName, Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns}}, nil)
	if err != nil {
		return nil, err
	}
	cfg := user.Config()
	cfg.QPS, cfg.Burst = e.Config.QPS, e.Config.Burst
	if err := e.waitForRBAC(ctx, userName, role.Rules); err != nil {
		return nil, err
	}
	e.managerConfig = cfg
	return rest.CopyConfig(cfg), nil
}

// waitForRBAC waits until the API server's authorizer has seen the binding:
// the manager's first request must not be refused by a cache that lags.
func (e *Env) waitForRBAC(ctx context.Context, user string, rules []rbacv1.PolicyRule) error {
	r := rules[0]
	review := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User:               user,
		ResourceAttributes: &authorizationv1.ResourceAttributes{Group: r.APIGroups[0], Resource: r.Resources[0], Verb: r.Verbs[0]},
	}}
	deadline := time.Now().Add(30 * time.Second)
	for {
		sar := review.DeepCopy()
		if err := e.Client.Create(ctx, sar); err != nil {
			return err
		}
		if sar.Status.Allowed {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("RBAC of config/rbac does not allow %s to %s %s after 30s: %s", user, r.Verbs[0], r.Resources[0], sar.Status.Reason)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ServiceAccountConfig returns a rest.Config that authenticates with a
// token for the ServiceAccount ns/name, obtained with TokenRequest as the
// kubelet obtains one for a Pod (an hour's validity): the API server
// authenticates it as system:serviceaccount:<ns>:<name> with the groups
// system:serviceaccounts and system:serviceaccounts:<ns>, and RBAC decides
// the rest. It carries no client certificate, only the cluster's CA.
func (e *Env) ServiceAccountConfig(ctx context.Context, ns, name string) (*rest.Config, error) {
	cs, err := kubernetes.NewForConfig(e.Config)
	if err != nil {
		return nil, err
	}
	expiry := int64(3600)
	tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &expiry}}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("TokenRequest for ServiceAccount %s/%s: %w", ns, name, err)
	}
	cfg := &rest.Config{
		Host:            e.Config.Host,
		BearerToken:     tr.Status.Token,
		TLSClientConfig: rest.TLSClientConfig{CAData: e.Config.CAData, CAFile: e.Config.CAFile, ServerName: e.Config.ServerName},
		QPS:             e.Config.QPS,
		Burst:           e.Config.Burst,
	}
	return cfg, nil
}
