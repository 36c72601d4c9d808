package chart

import (
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"

	"github.com/lethe-dev/lethe/internal/helmchart"
)

// Every object the chart renders, with any lint value set, decodes strictly
// (no unknown or misplaced field) into its Kubernetes type; the Prometheus
// Operator's kinds, which have no types here, are checked for their kind.
func TestRenderedObjectsAreStrictlyValid(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := apiextensionsv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	decoder := serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()
	for name, values := range helmchart.LintValues {
		ms, err := helmchart.Render(helmchart.Dir(root(t)), release, namespace, values)
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range helmchart.Documents(ms) {
			var head struct{ APIVersion, Kind string }
			if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
				t.Fatal(err)
			}
			if head.APIVersion == "monitoring.coreos.com/v1" {
				if head.Kind != "ServiceMonitor" && head.Kind != "PrometheusRule" {
					t.Errorf("%s: unexpected %s", name, head.Kind)
				}
				continue
			}
			if _, _, err := decoder.Decode([]byte(doc), nil, nil); err != nil {
				t.Errorf("%s: %s does not decode strictly: %v", name, head.Kind, err)
			}
		}
	}
}

func deployment(t *testing.T, objs []object) *appsv1.Deployment {
	t.Helper()
	b, err := json.Marshal(find(t, objs, "Deployment", "lethe-controller-manager"))
	if err != nil {
		t.Fatal(err)
	}
	var d appsv1.Deployment
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	return &d
}

// The manager meets the restricted Pod Security Standard with a read-only
// root file system, runs two replicas with leader election, probes and
// resource requests, and a PodDisruptionBudget lets drains evict one at a
// time.
func TestDeploymentDefaults(t *testing.T) {
	objs := render(t, nil)
	d := deployment(t, objs)
	pod := d.Spec.Template.Spec
	c := pod.Containers[0]
	sc, psc := c.SecurityContext, pod.SecurityContext
	switch {
	case psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot:
		t.Error("pod does not set runAsNonRoot")
	case psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
		t.Error("pod does not use the RuntimeDefault seccomp profile")
	case sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Error("container allows privilege escalation")
	case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0:
		t.Error("container does not drop ALL capabilities")
	case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Error("container's root file system is writable")
	case sc.Privileged != nil && *sc.Privileged:
		t.Error("container is privileged")
	}
	if pod.HostNetwork || pod.HostPID || pod.HostIPC {
		t.Error("pod shares a host namespace")
	}
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("replicas = %v; want 2", d.Spec.Replicas)
	}
	for _, want := range []string{"--leader-elect", "--leader-election-namespace=lethe-system", "--leader-election-retry-period=500ms"} {
		if !slices.Contains(c.Args, want) {
			t.Errorf("args %v lack %s", c.Args, want)
		}
	}
	if c.LivenessProbe == nil || c.ReadinessProbe == nil {
		t.Error("probes missing")
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
		t.Error("resource requests missing")
	}
	pdb := find(t, objs, "PodDisruptionBudget", "lethe-controller-manager")
	if got := pdb["spec"].(map[string]any)["maxUnavailable"]; got != float64(1) {
		t.Errorf("PodDisruptionBudget maxUnavailable = %v; want 1", got)
	}
	svc := find(t, objs, "Service", "lethe-metrics")
	if port := svc["spec"].(map[string]any)["ports"].([]any)[0].(map[string]any)["targetPort"]; port != "metrics" {
		t.Errorf("metrics Service targets port %v", port)
	}
	for _, kind := range []string{"ServiceMonitor", "PrometheusRule", "ConfigMap"} {
		for _, o := range objs {
			if o.kind() == kind {
				t.Errorf("%s rendered without being enabled", o.key())
			}
		}
	}
}

// Without existingSecret the chart generates a digest key of 48 random
// characters, kept on uninstall; with it, none is generated and the
// manager mounts the given Secret's key.
func TestDigestKey(t *testing.T) {
	objs := render(t, nil)
	s := find(t, objs, "Secret", "lethe-digest-key")
	if s.meta()["annotations"].(map[string]any)["helm.sh/resource-policy"] != "keep" {
		t.Error("the generated digest key is not kept on uninstall")
	}
	key, err := base64.StdEncoding.DecodeString(s["data"].(map[string]any)["key"].(string))
	if err != nil || len(key) < 32 {
		t.Errorf("generated key has %d bytes (%v); want at least 32", len(key), err)
	}
	if again := find(t, render(t, nil), "Secret", "lethe-digest-key"); again["data"].(map[string]any)["key"] == s["data"].(map[string]any)["key"] {
		t.Error("two renderings generated the same key")
	}

	objs = render(t, map[string]any{"digestKey": map[string]any{"existingSecret": "vault-lethe", "secretKey": "hmac"}})
	for _, o := range objs {
		if o.kind() == "Secret" {
			t.Errorf("%s rendered although existingSecret is set", o.key())
		}
	}
	vol := deployment(t, objs).Spec.Template.Spec.Volumes[0].Secret
	if vol.SecretName != "vault-lethe" || len(vol.Items) != 1 || vol.Items[0].Key != "hmac" || vol.Items[0].Path != "key" {
		t.Errorf("digest-key volume = %+v; want Secret vault-lethe, key hmac mounted as key", vol)
	}

	if _, err := helmchart.Render(helmchart.Dir(root(t)), release, namespace, map[string]any{"digestKey": map[string]any{"generate": false}}); err == nil || !strings.Contains(err.Error(), "existingSecret") {
		t.Errorf("rendering with neither existingSecret nor generate: err = %v; want one naming existingSecret", err)
	}
}

// A release of another name prefixes every object with it, and the
// admission policy lets that release's ServiceAccount create PurgeJobs.
func TestReleaseName(t *testing.T) {
	ms, err := helmchart.Render(helmchart.Dir(root(t)), "privacy", "ops", nil)
	if err != nil {
		t.Fatal(err)
	}
	objs := parse(t, helmchart.Documents(ms))
	for _, o := range objs {
		if o.kind() != "CustomResourceDefinition" && !strings.HasPrefix(o.name(), "privacy-lethe-") {
			t.Errorf("%s is not prefixed with the release's name", o.key())
		}
	}
	vap := find(t, objs, "ValidatingAdmissionPolicy", "privacy-lethe-purgejob-creator")
	b, _ := json.Marshal(vap)
	if !strings.Contains(string(b), "system:serviceaccount:ops:privacy-lethe-controller-manager") {
		t.Error("the purgejob-creator policy does not name the release's ServiceAccount")
	}
	binding := find(t, objs, "ClusterRoleBinding", "privacy-lethe-manager-rolebinding")
	subject := binding["subjects"].([]any)[0].(map[string]any)
	if subject["name"] != "privacy-lethe-controller-manager" || subject["namespace"] != "ops" {
		t.Errorf("ClusterRoleBinding subject = %v", subject)
	}
}

// The optional monitoring objects: ServiceMonitor, PrometheusRule with the
// alert labels on every rule, and the dashboard ConfigMap for Grafana's
// sidecar.
func TestMonitoring(t *testing.T) {
	objs := render(t, helmchart.LintValues["every option"])
	sm := find(t, objs, "ServiceMonitor", "lethe")
	ep := sm["spec"].(map[string]any)["endpoints"].([]any)[0].(map[string]any)
	if ep["port"] != "http-metrics" || ep["honorLabels"] != true {
		t.Errorf("ServiceMonitor endpoint %v: want port http-metrics and honorLabels (Lethe's namespace label must not become exported_namespace)", ep)
	}
	rule := find(t, objs, "PrometheusRule", "lethe")
	n := 0
	for _, g := range rule["spec"].(map[string]any)["groups"].([]any) {
		for _, r := range g.(map[string]any)["rules"].([]any) {
			n++
			labels := r.(map[string]any)["labels"].(map[string]any)
			if labels["team"] != "privacy" || labels["severity"] == nil {
				t.Errorf("alert %v has labels %v; want severity and team=privacy", r.(map[string]any)["alert"], labels)
			}
		}
	}
	if n < 10 {
		t.Errorf("PrometheusRule has %d alerts", n)
	}
	cm := find(t, objs, "ConfigMap", "lethe-dashboard")
	if cm.namespace() != "monitoring" || cm.meta()["labels"].(map[string]any)["grafana_dashboard"] != "1" {
		t.Errorf("dashboard ConfigMap in %q with labels %v", cm.namespace(), cm.meta()["labels"])
	}
	var dash map[string]any
	if err := json.Unmarshal([]byte(cm["data"].(map[string]any)["lethe.json"].(string)), &dash); err != nil || dash["title"] == nil {
		t.Errorf("the dashboard ConfigMap does not hold the dashboard JSON: %v", err)
	}
}
