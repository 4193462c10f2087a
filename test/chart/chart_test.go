// Package chart tests the Helm chart in charts/nodecycle with helm built
// from its Go module: lint, the same objects as config/default, the values,
// and an install into a real API server.
package chart

import (
	"context"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/nodecycle/nodecycle/test/framework/localkube"
)

var chartDir = filepath.Join(localkube.RepoRoot(), "charts", "nodecycle")

// tool runs a binary of the test assets (helm, kubectl) and returns stdout.
func tool(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(localkube.Assets(), name), args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// objects parses a multi-document YAML stream, keyed by kind/namespace/name.
func objects(t *testing.T, stream string) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, doc := range strings.Split(stream, "\n---") {
		var obj map[string]any
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			t.Fatalf("parsing %q: %v", doc, err)
		}
		if obj == nil {
			continue
		}
		u := unstructured.Unstructured{Object: obj}
		out[u.GetKind()+"/"+u.GetNamespace()+"/"+u.GetName()] = obj
	}
	return out
}

func TestLint(t *testing.T) {
	t.Log(tool(t, "helm", "lint", "--strict", chartDir))
}

// TestSameAsKustomize: with its default values, in nodecycle-system, the
// chart renders exactly the objects of config/default but the Namespace
// (helm install --create-namespace makes it).
func TestSameAsKustomize(t *testing.T) {
	want := objects(t, tool(t, "kubectl", "kustomize", filepath.Join(localkube.RepoRoot(), "config", "default")))
	delete(want, "Namespace//nodecycle-system")
	got := objects(t, tool(t, "helm", "template", "nodecycle", chartDir, "--namespace", "nodecycle-system", "--include-crds"))
	if len(got) < 10 {
		t.Fatalf("helm template rendered only %d objects", len(got))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("the chart and config/default differ (-kustomize +helm); run make generate:\n%s", diff)
	}
}

// TestValues: the image, the flags and the namespace come from the values
// and the release.
func TestValues(t *testing.T) {
	got := objects(t, tool(t, "helm", "template", "nc", chartDir, "--namespace", "maintenance",
		"--set", "image.repository=registry.example.com/nodecycle", "--set", "image.tag=v9.9.9",
		"--set", "manager.flags.drain-timeout=5m", "--set", "manager.flags.node-selector=pool=a",
		"--set", `manager.flags.freeze={2026-12-19T18:00:00+01:00\,2027-01-04T08:00:00+01:00\,holidays,2027-03-01T00:00:00Z\,2027-03-02T00:00:00Z\,audit}`,
		"--set-string", "agent.flags.sentinel-command=test -f /var/run/reboot-required: yes"))
	for key, obj := range got {
		u := unstructured.Unstructured{Object: obj}
		if u.GetNamespace() != "" && u.GetNamespace() != "maintenance" {
			t.Errorf("%s is not in the release namespace", key)
		}
		if u.GetKind() == "ClusterRoleBinding" || u.GetKind() == "RoleBinding" {
			subjects, _, _ := unstructured.NestedSlice(obj, "subjects")
			for _, s := range subjects {
				if ns := s.(map[string]any)["namespace"]; ns != "maintenance" {
					t.Errorf("%s: subject in namespace %v", key, ns)
				}
			}
		}
	}
	check := func(key string, wantArgs ...string) {
		t.Helper()
		obj, ok := got[key]
		if !ok {
			t.Fatalf("no %s", key)
		}
		containers, _, _ := unstructured.NestedSlice(obj, "spec", "template", "spec", "containers")
		c := containers[0].(map[string]any)
		if c["image"] != "registry.example.com/nodecycle:v9.9.9" {
			t.Errorf("%s: image %v", key, c["image"])
		}
		var args []string
		for _, a := range c["args"].([]any) {
			args = append(args, a.(string))
		}
		for _, a := range wantArgs {
			if !slices.Contains(args, a) {
				t.Errorf("%s: args %q lack %q", key, args, a)
			}
		}
	}
	check("Deployment/maintenance/nodecycle-manager", "--namespace=$(POD_NAMESPACE)", "--drain-timeout=5m", "--node-selector=pool=a",
		"--freeze=2026-12-19T18:00:00+01:00,2027-01-04T08:00:00+01:00,holidays", "--freeze=2027-03-01T00:00:00Z,2027-03-02T00:00:00Z,audit")
	check("DaemonSet/maintenance/nodecycle-agent", "--sentinel-command=test -f /var/run/reboot-required: yes")

	// Without a tag, the chart's appVersion.
	def := objects(t, tool(t, "helm", "template", "nc", chartDir))
	containers, _, _ := unstructured.NestedSlice(def["Deployment/default/nodecycle-manager"], "spec", "template", "spec", "containers")
	if img := containers[0].(map[string]any)["image"]; img != "ghcr.io/nodecycle/nodecycle:v0.1.0" {
		t.Errorf("default image %v", img)
	}
}

// TestInstall: helm install into a real API server (which has the CRDs
// already, as after an upgrade) creates every object in the release
// namespace; helm uninstall removes them.
func TestInstall(t *testing.T) {
	env, err := localkube.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	kubeconfig, err := env.AdminKubeconfig()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	helm := func(args ...string) string {
		t.Helper()
		return tool(t, "helm", append(args, "--kubeconfig", kubeconfig)...)
	}
	t.Log(helm("install", "nodecycle", chartDir, "--namespace", "maintenance", "--create-namespace",
		"--set", "image.tag=v0.1.0-test", "--set", "manager.flags.drain-timeout=5m"))

	var d appsv1.Deployment
	if err = env.Client.Get(ctx, client.ObjectKey{Namespace: "maintenance", Name: "nodecycle-manager"}, &d); err != nil {
		t.Fatal(err)
	}
	if img := d.Spec.Template.Spec.Containers[0].Image; img != "ghcr.io/nodecycle/nodecycle:v0.1.0-test" {
		t.Errorf("manager image %s", img)
	}
	var ds appsv1.DaemonSet
	if err = env.Client.Get(ctx, client.ObjectKey{Namespace: "maintenance", Name: "nodecycle-agent"}, &ds); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"nodecycle-agent-own-node", "nodecycle-node-annotations"} {
		var vap unstructured.Unstructured
		vap.SetAPIVersion("admissionregistration.k8s.io/v1")
		vap.SetKind("ValidatingAdmissionPolicyBinding")
		if err = env.Client.Get(ctx, client.ObjectKey{Name: name}, &vap); err != nil {
			t.Errorf("policy binding %s: %v", name, err)
		}
	}
	if out := helm("status", "nodecycle", "--namespace", "maintenance"); !strings.Contains(out, "STATUS: deployed") {
		t.Errorf("helm status:\n%s", out)
	}

	t.Log(helm("uninstall", "nodecycle", "--namespace", "maintenance", "--wait"))
	err = env.Client.Get(ctx, client.ObjectKey{Namespace: "maintenance", Name: "nodecycle-manager"}, &d)
	if !apierrors.IsNotFound(err) {
		t.Errorf("manager Deployment after uninstall: %v", err)
	}
}

// TestPodValues: each pod value of the manager and the agent reaches its
// pod, replacing the install's own (tolerations: added to them); unset,
// the install's own stay.
func TestPodValues(t *testing.T) {
	pod := func(objs map[string]map[string]any, key string) map[string]any {
		t.Helper()
		template, ok, _ := unstructured.NestedMap(objs[key], "spec", "template")
		if !ok {
			t.Fatalf("no pod template in %s", key)
		}
		return template
	}
	def := objects(t, tool(t, "helm", "template", "nc", chartDir, "--namespace", "nodecycle-system"))
	for component, key := range map[string]string{"manager": "Deployment/nodecycle-system/nodecycle-manager", "agent": "DaemonSet/nodecycle-system/nodecycle-agent"} {
		for _, c := range []struct {
			name, set string
			path      []string
			want      any
		}{
			{"nodeSelector", "nodeSelector.pool=infra", []string{"spec", "nodeSelector"}, map[string]any{"pool": "infra"}},
			{"affinity", "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].key=zone",
				[]string{"spec", "affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution", "nodeSelectorTerms"},
				[]any{map[string]any{"matchExpressions": []any{map[string]any{"key": "zone"}}}}},
			{"resources", "resources.limits.memory=1Gi", []string{"spec", "containers"}, map[string]any{"limits": map[string]any{"memory": "1Gi"}}},
			{"priorityClassName", "priorityClassName=ops-critical", []string{"spec", "priorityClassName"}, "ops-critical"},
			{"podAnnotations", "podAnnotations.example\\.com/team=ops", []string{"metadata", "annotations"}, map[string]any{"example.com/team": "ops"}},
			{"tolerations", "tolerations[0].key=dedicated", []string{"spec", "tolerations"}, nil},
		} {
			t.Run(component+"/"+c.name, func(t *testing.T) {
				got := pod(objects(t, tool(t, "helm", "template", "nc", chartDir, "--namespace", "nodecycle-system", "--set", component+"."+c.set)), key)
				own := pod(def, key)
				value, _, _ := unstructured.NestedFieldNoCopy(got, c.path...)
				field := c.path[:2]
				switch c.name {
				case "resources":
					value = value.([]any)[0].(map[string]any)["resources"]
				case "tolerations":
					owned, _, _ := unstructured.NestedSlice(own, c.path...)
					c.want = append(owned, map[string]any{"key": "dedicated"})
				}
				if diff := cmp.Diff(c.want, value); diff != "" {
					t.Errorf("%s.%s (-want +got):\n%s", component, c.name, diff)
				}
				// Nothing else of the pod changed.
				for _, p := range []map[string]any{got, own} {
					if c.name == "resources" {
						containers, _, _ := unstructured.NestedFieldNoCopy(p, c.path...)
						delete(containers.([]any)[0].(map[string]any), "resources")
						continue
					}
					unstructured.RemoveNestedField(p, field...)
				}
				if diff := cmp.Diff(own, got); diff != "" {
					t.Errorf("%s.%s changed more than its field (-default +set):\n%s", component, c.name, diff)
				}
			})
		}
	}
}
