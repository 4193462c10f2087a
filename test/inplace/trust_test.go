package inplace

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	runtimecatalog "sigs.k8s.io/cluster-api/api/runtime/catalog"
	runtimehooksv1 "sigs.k8s.io/cluster-api/api/runtime/hooks/v1alpha1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/inplace"
	"github.com/nodecycle/nodecycle/internal/nodes"
	"github.com/nodecycle/nodecycle/internal/nodeupdate"
	"github.com/nodecycle/nodecycle/test/framework/localkube"
	"github.com/nodecycle/nodecycle/test/framework/sim"
)

// post sends an UpdateMachineRequest straight to nodecycle's hook port,
// as any pod that reaches the port could, with the client certificate of
// dir ("" : none). It returns the answer, or the transport's error.
func post(t *testing.T, dir string, req *runtimehooksv1.UpdateMachineRequest) (*runtimehooksv1.UpdateMachineResponse, error) {
	t.Helper()
	catalog := runtimecatalog.New()
	if err := runtimehooksv1.AddToCatalog(catalog); err != nil {
		t.Fatal(err)
	}
	gvh, err := catalog.GroupVersionHook(runtimehooksv1.UpdateMachine)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	ca, _ := os.ReadFile(filepath.Join(env.Dir, "in-place-updates", "ca.crt"))
	roots.AppendCertsFromPEM(ca)
	cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if dir != "" {
		cert, cerr := tls.LoadX509KeyPair(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"))
		if cerr != nil {
			t.Fatal(cerr)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	req.SetGroupVersionKind(runtimehooksv1.GroupVersion.WithKind("UpdateMachineRequest"))
	body, _ := json.Marshal(req)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 10 * time.Second}
	url := fmt.Sprintf("https://127.0.0.1:%d%s", port, runtimecatalog.GVHToPath(gvh, inplace.HandlerUpdateMachine))
	resp, err := hc.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	out := &runtimehooksv1.UpdateMachineResponse{}
	if err := json.Unmarshal(b, out); err != nil {
		return nil, fmt.Errorf("HTTP %d: %s", resp.StatusCode, b)
	}
	return out, nil
}

// TestOnlyClusterAPIStartsAnUpdate: a request posted to the hook port for
// an opted-in Machine with a node, carrying a systemd drop-in, opens no
// NodeCycle and cordons nothing: without a client certificate the TLS
// handshake fails; with one (a caller that got hold of it), a Machine that
// Cluster API did not mark is refused, and so are files other than those
// of the Machine's bootstrap configuration.
func TestOnlyClusterAPIStartsAnUpdate(t *testing.T) {
	ctx := context.Background()
	const ns = "unmarked"
	if err := optIn(ctx, ns); err != nil {
		t.Fatal(err)
	}
	if _, err := capi.CreateCluster(ctx, ns, "c", env.Config); err != nil {
		t.Fatal(err)
	}
	if _, err := capi.CreateMachineDeploymentWith(ctx, ns, "c", "pool", 1, map[string]string{v1alpha1.AnnotationStrategy: "reboot"},
		sim.PoolOptions{MaxUnavailable: 1, BootstrapSpec: bootstrapSpec(sysctlFile, "a = 1\n")}); err != nil {
		t.Fatal(err)
	}
	m := readyMachines(t, ns, "pool", 1)[0]
	dropIn := map[string]any{"apiVersion": "bootstrap.cluster.x-k8s.io/v1beta2", "kind": m.Spec.Bootstrap.ConfigRef.Kind,
		"metadata": map[string]any{"namespace": ns, "name": m.Spec.Bootstrap.ConfigRef.Name},
		"spec": map[string]any{"files": []any{map[string]any{"path": "/etc/systemd/system/kubelet.service.d/99-x.conf",
			"content": "[Service]\nExecStartPre=/bin/sh -c 'id > /tmp/owned'\n"}}}}
	req := &runtimehooksv1.UpdateMachineRequest{}
	req.Desired.Machine = *m.DeepCopy()
	req.Desired.BootstrapConfig.Raw, _ = json.Marshal(dropIn)

	if _, err := post(t, "", req); err == nil {
		t.Error("a call without a client certificate was answered")
	}
	resp, err := post(t, clientCerts, req)
	if err != nil {
		t.Fatalf("with Cluster API's client certificate: %v", err)
	}
	if resp.Status != runtimehooksv1.ResponseStatusFailure || !strings.Contains(resp.Message, "not marked by Cluster API") {
		t.Errorf("an unmarked Machine: %s %q, want a failure saying it is not marked", resp.Status, resp.Message)
	}

	// Cluster API's marks, forged by someone who may patch Machines but
	// not the bootstrap configuration: the files must still be its.
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:"",%q:"UpdateMachine"}}}`, clusterv1.UpdateInProgressAnnotation, "runtime.cluster.x-k8s.io/pending-hooks")
	if err = k8s.Patch(ctx, &m, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		t.Fatal(err)
	}
	if resp, err = post(t, clientCerts, req); err != nil {
		t.Fatal(err)
	}
	if resp.Status != runtimehooksv1.ResponseStatusFailure || !strings.Contains(resp.Message, "not marked by Cluster API") && !strings.Contains(resp.Message, "differ") {
		t.Errorf("files not the Machine's: %s %q, want a failure", resp.Status, resp.Message)
	}
	var list v1alpha1.NodeCycleList
	if err := k8s.List(ctx, &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 0 || node0(t, m.Status.NodeRef.Name).Spec.Unschedulable {
		t.Errorf("%d NodeCycles opened, node cordoned %t: want none, no", len(list.Items), node0(t, m.Status.NodeRef.Name).Spec.Unschedulable)
	}
}

// TestAPatchNodesHolderCannotWriteFilesOrReboot: on a workload cluster
// with the agent installed by the product, a service account allowed only
// to patch Nodes (node-feature-discovery, an autoscaler) writes a reboot
// request carrying a cron file, and one carrying a sysctl file, on a node
// it cordoned: the agent writes nothing and never reboots.
func TestAPatchNodesHolderCannotWriteFilesOrReboot(t *testing.T) {
	p := startPool(t)
	ctx := context.Background()
	const node = "patcher-target"
	if err := sim.CreateNode(ctx, cs, node, map[string]string{sim.NodeLabel: "true"}); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(t.TempDir(), node)
	p.startAgent(node, root)

	// A service account that may get and patch Nodes, nothing else.
	if _, err := cs.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "node-patcher"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "node-patcher"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get", "patch"}}}}); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "node-patcher"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "node-patcher"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: "default", Name: "node-patcher"}}}); err != nil {
		t.Fatal(err)
	}
	cfg, err := localkube.As(ctx, env.Config, "default", "node-patcher", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	patcher := kubernetes.NewForConfigOrDie(cfg)
	for i, f := range []nodeupdate.File{
		{Path: "/etc/cron.d/x", Content: "* * * * * root id > /tmp/owned\n"},
		{Path: sysctlFile, Content: "kernel.x = 1\n"},
	} {
		u := &v1alpha1.UpdateSpec{ID: fmt.Sprintf("forged-%d", i), ContentSecret: "nodecycle-update-forged", Files: nodeupdate.Spec([]nodeupdate.File{f})}
		set := map[string]*string{
			v1alpha1.AnnotationRebootRequest:   ptr.To(fmt.Sprintf("forged-%d", i)),
			v1alpha1.AnnotationUpdate:          ptr.To(nodeupdate.Encode(u)),
			v1alpha1.AnnotationRebootSignature: ptr.To("v1.9999999999.AAAA"),
		}
		if _, err := patcher.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, []byte(`{"spec":{"unschedulable":true}}`), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := patcher.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, nodes.AnnotationsPatch(set), metav1.PatchOptions{}); err != nil {
			t.Fatalf("the patcher's request was refused by the API server (the agent must refuse it instead): %v", err)
		}
	}
	// The agent saw both requests (each is a Node event) and refused them.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if p.kubelet.Reboots(node) != 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	n := node0(t, node)
	if p.kubelet.Reboots(node) != 0 || n.Annotations[v1alpha1.AnnotationRebootAck] != "" {
		t.Errorf("node %s: %d reboots, ack %q; want none", node, p.kubelet.Reboots(node), n.Annotations[v1alpha1.AnnotationRebootAck])
	}
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Errorf("the agent wrote under the node's root: %v", entries)
	}
}
