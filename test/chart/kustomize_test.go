package chart

import (
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// clusterScoped kinds carry no namespace (kustomize sets one on the
// admission policy bindings, which the API server ignores).
var clusterScoped = []string{"CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding", "Namespace"}

// onlyInChart are the kinds the chart adds to what config/default
// installs; onlyInKustomize what the chart leaves to Helm.
var (
	onlyInChart     = []string{"Service", "Secret", "PodDisruptionBudget"}
	onlyInKustomize = []string{"Namespace"} // helm install --create-namespace
)

// comparable strips what legitimately differs between the chart's and
// kustomize's rendering of the same object: labels, annotations, the
// namespace of cluster-scoped objects, and runs of white space in strings
// (kustomize re-folds the folded CEL expressions of config/admission).
func comparable(o object) object {
	var c object
	b, _ := yaml.Marshal(o)
	_ = yaml.Unmarshal(b, &c)
	c = object(squeeze(map[string]any(c)).(map[string]any))
	m := c.meta()
	delete(m, "labels")
	delete(m, "annotations")
	if slices.Contains(clusterScoped, c.kind()) {
		delete(m, "namespace")
	}
	return c
}

// With the default values, `helm install lethe -n lethe-system` installs
// exactly the CRDs, RBAC, admission policies and ServiceAccount of
// config/default, under the same names; the Deployment runs the same way.
func TestDefaultMatchesKustomize(t *testing.T) {
	chart := byKey(render(t, nil))
	kust := byKey(kustomize(t, "config/default"))
	compare(t, chart, kust, "Deployment")
	compareDeployments(t, chart["Deployment/lethe-controller-manager"], kust["Deployment/lethe-controller-manager"])
}

// With watchNamespaces, the chart gives the manager a Role and RoleBinding
// in each namespace, as config/rbac-namespaced does, and no ClusterRole, as
// config/namespaced does.
func TestNamespacedMatchesKustomize(t *testing.T) {
	objs := render(t, map[string]any{"watchNamespaces": []any{"shop", "billing"}})
	var perNamespace []object
	var rest []object
	for _, o := range objs {
		if ns := o.namespace(); (o.kind() == "Role" || o.kind() == "RoleBinding") && ns != namespace {
			perNamespace = append(perNamespace, o)
			continue
		}
		rest = append(rest, o)
	}
	compare(t, byKey(rest), byKey(kustomize(t, "config/namespaced")), "Deployment")
	namespaced := byKey(kustomize(t, "config/rbac-namespaced"))
	for _, ns := range []string{"shop", "billing"} {
		var in []object
		for _, o := range perNamespace {
			if o.namespace() == ns {
				c := comparable(o)
				delete(c.meta(), "namespace")
				in = append(in, c)
			}
		}
		compare(t, byKey(in), namespaced)
	}
	dep := find(t, objs, "Deployment", "lethe-controller-manager")
	if args := containerArgs(dep); !slices.Contains(args, "--watch-namespaces=shop,billing") {
		t.Errorf("the Deployment's args %v lack --watch-namespaces=shop,billing", args)
	}
}

// compare checks that chart and kustomize render the same objects (but for
// the kinds of onlyInChart and onlyInKustomize), and that they are equal
// but for the kinds in skip, which the caller compares.
func compare(t *testing.T, chart, kust map[string]object, skip ...string) {
	t.Helper()
	for _, k := range sortedKeys(kust) {
		o := kust[k]
		c, ok := chart[k]
		if !ok {
			if !slices.Contains(onlyInKustomize, o.kind()) {
				t.Errorf("kustomize renders %s, the chart does not", k)
			}
			continue
		}
		if slices.Contains(skip, o.kind()) {
			continue
		}
		if want, got := comparable(o), comparable(c); !reflect.DeepEqual(want, got) {
			w, _ := yaml.Marshal(want)
			g, _ := yaml.Marshal(got)
			t.Errorf("%s differs between kustomize and the chart:\n--- kustomize\n%s\n--- chart\n%s", k, w, g)
		}
	}
	for _, k := range sortedKeys(chart) {
		if _, ok := kust[k]; !ok && !slices.Contains(onlyInChart, chart[k].kind()) {
			t.Errorf("the chart renders %s, kustomize does not", k)
		}
	}
}

// compareDeployments checks what the chart's Deployment must share with
// config/manager: the kustomize args (the chart adds more), ports, probes,
// mounts, resources and the restricted security contexts.
func compareDeployments(t *testing.T, chart, kust object) {
	t.Helper()
	if chart == nil || kust == nil {
		t.Fatal("a Deployment is missing")
	}
	for _, a := range containerArgs(kust) {
		if !slices.Contains(containerArgs(chart), a) {
			t.Errorf("the chart's manager lacks the argument %s of config/manager", a)
		}
	}
	ck, kk := container(chart), container(kust)
	for _, field := range []string{"securityContext", "livenessProbe", "readinessProbe", "volumeMounts", "resources"} {
		if !reflect.DeepEqual(ck[field], kk[field]) {
			t.Errorf("the manager container's %s differs from config/manager: chart %v, kustomize %v", field, ck[field], kk[field])
		}
	}
	cs, ks := podSpec(chart), podSpec(kust)
	for _, field := range []string{"securityContext", "serviceAccountName", "terminationGracePeriodSeconds"} {
		if !reflect.DeepEqual(cs[field], ks[field]) {
			t.Errorf("the pod's %s differs from config/manager: chart %v, kustomize %v", field, cs[field], ks[field])
		}
	}
	secret := func(spec map[string]any) any {
		for _, v := range spec["volumes"].([]any) {
			if v.(map[string]any)["name"] == "digest-key" {
				return v.(map[string]any)["secret"].(map[string]any)["secretName"]
			}
		}
		return nil
	}
	if secret(cs) != secret(ks) {
		t.Errorf("the digest key comes from Secret %v in the chart and %v in config/manager", secret(cs), secret(ks))
	}
}

// squeeze collapses runs of white space in every string of v.
func squeeze(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = squeeze(e)
		}
		return v
	case object:
		return squeeze(map[string]any(v))
	case []any:
		for i, e := range v {
			v[i] = squeeze(e)
		}
		return v
	case string:
		return strings.Join(strings.Fields(v), " ")
	}
	return v
}

func podSpec(dep object) map[string]any {
	return dep["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)
}

func container(dep object) map[string]any {
	return podSpec(dep)["containers"].([]any)[0].(map[string]any)
}

func containerArgs(dep object) []string {
	var args []string
	for _, a := range container(dep)["args"].([]any) {
		args = append(args, strings.TrimSpace(a.(string)))
	}
	return args
}

func sortedKeys(m map[string]object) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
