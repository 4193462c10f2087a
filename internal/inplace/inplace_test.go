package inplace

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	runtimehooksv1 "sigs.k8s.io/cluster-api/api/runtime/hooks/v1alpha1"
	runtimev1 "sigs.k8s.io/cluster-api/api/runtime/v1beta2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/cluster"
	"github.com/nodecycle/nodecycle/internal/cycles"
	"github.com/nodecycle/nodecycle/internal/nodeupdate"
)

var rules = Rules{Paths: DefaultPaths}

func file(path, content string) bootstrapFile { return bootstrapFile{Path: path, Content: content} }

func set(files ...bootstrapFile) map[string]bootstrapFile {
	out := map[string]bootstrapFile{}
	for _, f := range files {
		out[f.Path] = f
	}
	return out
}

// Only whole, inline files under the directories changed in place are
// covered; any other change of the files is a replacement, and says why.
func TestPlan(t *testing.T) {
	sysctl := file("/etc/sysctl.d/90-a.conf", "a = 1\n")
	changed := file("/etc/sysctl.d/90-a.conf", "a = 2\n")
	encoded := changed
	encoded.Encoding, encoded.Content = "base64", base64.StdEncoding.EncodeToString([]byte("a = 3\n"))
	got, err := rules.Plan(set(sysctl, file("/etc/kubernetes/x", "k")), set(changed, file("/etc/kubernetes/x", "k")))
	if err != nil || len(got) != 1 || got[0].Content != "a = 2\n" {
		t.Fatalf("a changed sysctl file: %+v, %v", got, err)
	}
	if got, err := rules.Plan(set(sysctl), set(encoded)); err != nil || got[0].Content != "a = 3\n" {
		t.Fatalf("a base64 file: %+v, %v", got, err)
	}
	if got, err := rules.Plan(set(sysctl), set(sysctl)); err != nil || len(got) != 0 {
		t.Fatalf("no change: %+v, %v", got, err)
	}
	for name, tc := range map[string]struct {
		current, desired map[string]bootstrapFile
		why              string
	}{
		"removed":        {set(sysctl), set(), "is removed"},
		"outside":        {set(), set(file("/etc/kubernetes/x", "k")), "not under a directory changed in place"},
		"from a Secret":  {set(), set(bootstrapFile{Path: "/etc/sysctl.d/s", ContentFrom: json.RawMessage(`{"secret":{"name":"s","key":"k"}}`)}), "from a Secret"},
		"appended":       {set(), set(bootstrapFile{Path: "/etc/sysctl.d/s", Append: true}), "appended"},
		"owned":          {set(), set(bootstrapFile{Path: "/etc/sysctl.d/s", Owner: "app:app"}), "owned by app:app"},
		"gzip":           {set(), set(bootstrapFile{Path: "/etc/sysctl.d/s", Encoding: "gzip+base64"}), "encoding gzip+base64"},
		"bad mode":       {set(), set(bootstrapFile{Path: "/etc/sysctl.d/s", Permissions: "777x"}), "not an octal mode"},
		"too big":        {set(), set(file("/etc/sysctl.d/big", strings.Repeat("x", MaxUpdateBytes+1))), "more than the"},
		"not clean path": {set(), set(file("/etc/sysctl.d/../shadow", "x")), "not a clean absolute path"},
	} {
		if got, err := rules.Plan(tc.current, tc.desired); err == nil || !strings.Contains(err.Error(), tc.why) {
			t.Errorf("%s: %+v, %v; want an error saying %q", name, got, err, tc.why)
		}
	}
}

type ladders map[string][]v1alpha1.Strategy

func (l ladders) Ladder(_ context.Context, m *clusterv1.Machine) ([]v1alpha1.Strategy, error) {
	return l[m.Labels[clusterv1.MachineDeploymentNameLabel]], nil
}

func template(content string) runtime.RawExtension {
	b, _ := json.Marshal(map[string]any{"apiVersion": "bootstrap.cluster.x-k8s.io/v1beta2", "kind": "KubeadmConfigTemplate",
		"spec": map[string]any{"template": map[string]any{"spec": map[string]any{"files": []any{map[string]any{"path": "/etc/sysctl.d/90-a.conf", "content": content}}}}}})
	return runtime.RawExtension{Raw: b}
}

// CanUpdateMachineSet covers an opted-in MachineDeployment's file change
// with a patch of the files; a MachineDeployment not opted in to reboot
// gets no patch (a replacement) and a message saying why.
func TestCanUpdateMachineSet(t *testing.T) {
	e := &Extension{Ladders: ladders{"pool": {v1alpha1.StrategyReboot}, "replaced": {v1alpha1.StrategyReplace}}, Rules: rules, Log: logr.Discard()}
	req := func(md string) *runtimehooksv1.CanUpdateMachineSetRequest {
		r := &runtimehooksv1.CanUpdateMachineSetRequest{}
		r.Current.MachineSet.Labels = map[string]string{clusterv1.MachineDeploymentNameLabel: md}
		r.Current.BootstrapConfigTemplate, r.Desired.BootstrapConfigTemplate = template("a = 1\n"), template("a = 2\n")
		return r
	}
	resp := &runtimehooksv1.CanUpdateMachineSetResponse{}
	e.CanUpdateMachineSet(context.Background(), req("pool"), resp)
	if resp.Status != runtimehooksv1.ResponseStatusSuccess || resp.BootstrapConfigTemplatePatch.PatchType != runtimehooksv1.JSONPatchType ||
		!strings.Contains(string(resp.BootstrapConfigTemplatePatch.Patch), `"path":"/spec/template/spec/files"`) || !strings.Contains(string(resp.BootstrapConfigTemplatePatch.Patch), `a = 2`) {
		t.Fatalf("opted in: %+v %s", resp, resp.BootstrapConfigTemplatePatch.Patch)
	}
	for _, md := range []string{"replaced", "none"} {
		resp := &runtimehooksv1.CanUpdateMachineSetResponse{}
		e.CanUpdateMachineSet(context.Background(), req(md), resp)
		if resp.Status != runtimehooksv1.ResponseStatusSuccess || resp.BootstrapConfigTemplatePatch.IsDefined() || !strings.Contains(resp.Message, "not opted in") {
			t.Errorf("%s: %+v", md, resp)
		}
	}
}

// markedMachine is a Machine that Cluster API marked for an in-place
// update, with its bootstrap configuration (marked too) holding content.
func markedMachine(content string) (*clusterv1.Machine, *unstructured.Unstructured) {
	m := &clusterv1.Machine{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "pool-1", UID: "uid-1",
		Annotations: map[string]string{clusterv1.UpdateInProgressAnnotation: "", runtimev1.PendingHooksAnnotation: "UpdateMachine"}},
		Spec: clusterv1.MachineSpec{ClusterName: "c", Bootstrap: clusterv1.Bootstrap{ConfigRef: clusterv1.ContractVersionedObjectReference{
			APIGroup: "bootstrap.cluster.x-k8s.io", Kind: "KubeadmConfig", Name: "pool-1"}}},
		Status: clusterv1.MachineStatus{NodeRef: clusterv1.MachineNodeReference{Name: "node-1"}}}
	cfg := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "bootstrap.cluster.x-k8s.io/v1beta2", "kind": "KubeadmConfig",
		"metadata": map[string]any{"namespace": "ns", "name": "pool-1", "annotations": map[string]any{clusterv1.UpdateInProgressAnnotation: ""}},
		"spec":     map[string]any{"files": []any{map[string]any{"path": "/etc/sysctl.d/90-a.conf", "content": content}}}}}
	return m, cfg
}

// updateRequest is Cluster API's UpdateMachine request for m, with cfg as
// its bootstrap configuration.
func updateRequest(m *clusterv1.Machine, cfg *unstructured.Unstructured) *runtimehooksv1.UpdateMachineRequest {
	req := &runtimehooksv1.UpdateMachineRequest{}
	req.Desired.Machine.ObjectMeta = metav1.ObjectMeta{Namespace: m.Namespace, Name: m.Name, UID: m.UID}
	raw, _ := json.Marshal(cfg.Object)
	req.Desired.BootstrapConfig = runtime.RawExtension{Raw: raw}
	return req
}

func updateClient(objs ...client.Object) client.Client {
	scheme := runtime.NewScheme()
	_ = clusterv1.AddToScheme(scheme)
	_ = v1alpha1.AddToScheme(scheme)
	return fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).WithStatusSubresource(&v1alpha1.NodeCycle{}).
		WithIndex(&v1alpha1.NodeCycle{}, cycles.IndexNodeName, func(o client.Object) []string { return []string{o.(*v1alpha1.NodeCycle).Spec.NodeName} }).Build()
}

// workloads hands out one workload cluster.
type workloads struct{ c client.Client }

func (w workloads) Workload(context.Context, string, string) (cluster.Workload, error) {
	return cluster.Workload{Client: w.c, Reader: w.c, AgentNamespace: cluster.WorkloadAgentNamespace}, nil
}

// UpdateMachine opens one NodeCycle per update and answers from it: in
// progress, done, failed; a node with another open NodeCycle waits.
func TestUpdateMachine(t *testing.T) {
	ctx := context.Background()
	m, cfg := markedMachine("a = 2\n")
	other := &v1alpha1.NodeCycle{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "auto"}, Spec: v1alpha1.NodeCycleSpec{NodeName: "node-1", ClusterName: "c"}}
	c := updateClient(m, cfg, other)
	wc := fake.NewClientBuilder().Build() // the workload cluster
	e := &Extension{Client: c, Rules: rules, Poll: 5e9, Log: logr.Discard(), Workloads: workloads{wc}}
	req := updateRequest(m, cfg)
	call := func() *runtimehooksv1.UpdateMachineResponse {
		resp := &runtimehooksv1.UpdateMachineResponse{}
		e.UpdateMachine(ctx, req, resp)
		return resp
	}
	list := func() []v1alpha1.NodeCycle {
		var l v1alpha1.NodeCycleList
		if err := c.List(ctx, &l, client.MatchingLabels{LabelMachine: "pool-1"}); err != nil {
			t.Fatal(err)
		}
		return l.Items
	}
	if resp := call(); resp.RetryAfterSeconds != 5 || !strings.Contains(resp.Message, "NodeCycle auto open") || len(list()) != 0 {
		t.Fatalf("another NodeCycle open: %+v, %d update NodeCycles", resp, len(list()))
	}
	if err := c.Delete(ctx, other); err != nil {
		t.Fatal(err)
	}
	call()
	if resp := call(); resp.RetryAfterSeconds != 5 || resp.Status != runtimehooksv1.ResponseStatusSuccess || len(list()) != 1 {
		t.Fatalf("opened: %+v, %d update NodeCycles", resp, len(list()))
	}
	nc := list()[0]
	// I6: the NodeCycle keeps digests; the contents are in the workload
	// cluster's Secret for the agent.
	contents := &corev1.Secret{}
	if err := wc.Get(ctx, client.ObjectKey{Namespace: cluster.WorkloadAgentNamespace, Name: nc.Spec.Update.ContentSecret}, contents); err != nil {
		t.Fatalf("the content Secret: %v", err)
	}
	if got, err := nodeupdate.Contents(nc.Spec.Update, contents.Data); err != nil || got[0].Content != "a = 2\n" {
		t.Fatalf("the contents: %+v %v", got, err)
	}
	if nc.Spec.Request.Strategy != v1alpha1.StrategyReboot || nc.Spec.Update == nil || nc.Spec.Update.Files[0].SHA256 != nodeupdate.Digest("a = 2\n") || nc.Spec.ClusterName != "c" {
		t.Fatalf("the NodeCycle: %+v", nc.Spec)
	}
	for phase, want := range map[v1alpha1.Phase]runtimehooksv1.ResponseStatus{v1alpha1.PhaseSucceeded: runtimehooksv1.ResponseStatusSuccess, v1alpha1.PhaseFailed: runtimehooksv1.ResponseStatusFailure} {
		nc.Status.Phase = phase
		if err := c.Status().Update(ctx, &nc); err != nil {
			t.Fatal(err)
		}
		if resp := call(); resp.Status != want || resp.RetryAfterSeconds != 0 || len(list()) != 1 {
			t.Errorf("%s: %+v, %d update NodeCycles", phase, resp, len(list()))
		}
	}
}

// Only a Machine that Cluster API marked, named with its UID, with the
// files of its stored bootstrap configuration, gets an update: a request
// posted by anyone else (for an unmarked Machine, with other files, with
// a configuration that is not the Machine's) fails and opens nothing.
func TestUpdateMachineRefusesWhatClusterAPIDidNotAsk(t *testing.T) {
	ctx := context.Background()
	for name, tc := range map[string]struct {
		change func(m *clusterv1.Machine, stored, sent *unstructured.Unstructured, req *runtimehooksv1.UpdateMachineRequest)
		why    string
	}{
		"not marked": {func(m *clusterv1.Machine, _, _ *unstructured.Unstructured, _ *runtimehooksv1.UpdateMachineRequest) {
			delete(m.Annotations, clusterv1.UpdateInProgressAnnotation)
		}, "not marked by Cluster API"},
		"hook not pending": {func(m *clusterv1.Machine, _, _ *unstructured.Unstructured, _ *runtimehooksv1.UpdateMachineRequest) {
			m.Annotations[runtimev1.PendingHooksAnnotation] = "AfterClusterUpgrade"
		}, "not marked by Cluster API"},
		"configuration not marked": {func(_ *clusterv1.Machine, stored, _ *unstructured.Unstructured, _ *runtimehooksv1.UpdateMachineRequest) {
			stored.SetAnnotations(nil)
		}, "not marked by Cluster API"},
		"other files": {func(_ *clusterv1.Machine, _, sent *unstructured.Unstructured, _ *runtimehooksv1.UpdateMachineRequest) {
			_ = unstructured.SetNestedSlice(sent.Object, []any{map[string]any{"path": "/etc/systemd/system/kubelet.service.d/99-x.conf", "content": "[Service]\nExecStartPre=/bin/sh -c id\n"}}, "spec", "files")
		}, "differ from those of"},
		"another configuration": {func(_ *clusterv1.Machine, _, sent *unstructured.Unstructured, _ *runtimehooksv1.UpdateMachineRequest) {
			sent.SetName("other")
		}, "is not the Machine's"},
		"another UID": {func(_ *clusterv1.Machine, _, _ *unstructured.Unstructured, req *runtimehooksv1.UpdateMachineRequest) {
			req.Desired.Machine.UID = "uid-2"
		}, "the request names uid-2"},
	} {
		m, stored := markedMachine("a = 2\n")
		sent := stored.DeepCopy()
		req := updateRequest(m, sent)
		tc.change(m, stored, sent, req)
		raw, _ := json.Marshal(sent.Object)
		req.Desired.BootstrapConfig = runtime.RawExtension{Raw: raw}
		c := updateClient(m, stored)
		e := &Extension{Client: c, Rules: rules, Poll: 5e9, Log: logr.Discard()}
		resp := &runtimehooksv1.UpdateMachineResponse{}
		e.UpdateMachine(ctx, req, resp)
		var l v1alpha1.NodeCycleList
		if err := c.List(ctx, &l); err != nil {
			t.Fatal(err)
		}
		if resp.Status != runtimehooksv1.ResponseStatusFailure || !strings.Contains(resp.Message, tc.why) || len(l.Items) != 0 {
			t.Errorf("%s: %s %q, %d NodeCycles; want a failure saying %q and none", name, resp.Status, resp.Message, len(l.Items), tc.why)
		}
	}
}
