package agent

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/nodeupdate"
	"github.com/nodecycle/nodecycle/internal/signing"
)

const testNamespace = "nodecycle-system"

var testKey = bytes.Repeat([]byte{1}, 32)

// sign signs node's reboot request and update as the manager does.
func sign(node *corev1.Node) {
	req := signing.Request{Node: node.Name, ID: node.Annotations[v1alpha1.AnnotationRebootRequest], Update: node.Annotations[v1alpha1.AnnotationUpdate]}
	node.Annotations[v1alpha1.AnnotationRebootSignature] = signing.Sign(testKey, req, time.Now())
}

// signedClientset holds the nodes, their requests signed, and the key.
func signedClientset(nodes ...*corev1.Node) *fake.Clientset {
	objs := []runtime.Object{&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: signing.SecretName}, Data: map[string][]byte{signing.SecretKey: testKey}}}
	for _, n := range nodes {
		sign(n)
		objs = append(objs, n)
	}
	return fake.NewClientset(objs...)
}

// workerAgent is the agent of node worker-1 on cs, writing under root.
func workerAgent(cs *fake.Clientset, root string) (*Agent, *countingRebooter) {
	r := &countingRebooter{}
	a := &Agent{NodeName: "worker-1", Client: cs, Rebooter: r, HostRoot: root, Namespace: testNamespace, Metrics: NewMetrics(nil)}
	a.lister = func() (*corev1.Node, error) {
		return cs.CoreV1().Nodes().Get(context.Background(), "worker-1", metav1.GetOptions{})
	}
	return a, r
}

// updateOf is an update of files, as the manager makes it: the spec
// (digests) and its content Secret in the agent's namespace.
func updateOf(files ...nodeupdate.File) (*v1alpha1.UpdateSpec, *corev1.Secret) {
	spec := &v1alpha1.UpdateSpec{ID: nodeupdate.ID(nodeupdate.Spec(files)), ContentSecret: "nodecycle-update-test", Files: nodeupdate.Spec(files)}
	return spec, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: spec.ContentSecret}, Data: nodeupdate.SecretData(files)}
}

// A request that someone with `patch nodes` wrote (unsigned, signed for
// another node, or with an update other than the signed one, such as a
// file under /etc/cron.d) is neither acknowledged nor carried out, and
// nothing is written; the manager's own request is.
func TestOnlySignedRequestsAreCarriedOut(t *testing.T) {
	spec, contents := updateOf(nodeupdate.File{Path: "/etc/sysctl.d/90-a.conf", Content: "a = 2\n"})
	forged, _ := updateOf(nodeupdate.File{Path: "/etc/systemd/system/kubelet.service.d/99-x.conf", Content: "[Service]\nExecStartPre=/bin/sh -c id\n"})
	for name, tamper := range map[string]func(n *corev1.Node){
		"unsigned":            func(n *corev1.Node) { delete(n.Annotations, v1alpha1.AnnotationRebootSignature) },
		"signed for another":  func(n *corev1.Node) { n.Name = "worker-2"; sign(n); n.Name = "worker-1" },
		"another request":     func(n *corev1.Node) { n.Annotations[v1alpha1.AnnotationRebootRequest] = "ns/nc/uid-2" },
		"the update replaced": func(n *corev1.Node) { n.Annotations[v1alpha1.AnnotationUpdate] = nodeupdate.Encode(forged) },
		"the update added": func(n *corev1.Node) {
			delete(n.Annotations, v1alpha1.AnnotationUpdate)
			sign(n)
			n.Annotations[v1alpha1.AnnotationUpdate] = nodeupdate.Encode(forged)
		},
		"signed with a forged": func(n *corev1.Node) {
			n.Annotations[v1alpha1.AnnotationRebootSignature] = signing.Sign(bytes.Repeat([]byte{2}, 32), signing.Request{Node: "worker-1", ID: "ns/nc/uid"}, time.Now())
		},
	} {
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: "worker-1", Annotations: map[string]string{
				v1alpha1.AnnotationRebootRequest: "ns/nc/uid", v1alpha1.AnnotationCordonedBy: "ns/nc", v1alpha1.AnnotationUpdate: nodeupdate.Encode(spec)}},
			Spec: corev1.NodeSpec{Unschedulable: true},
		}
		cs := signedClientset(node)
		if err := cs.Tracker().Add(contents.DeepCopy()); err != nil {
			t.Fatal(err)
		}
		tamper(node)
		if _, err := cs.CoreV1().Nodes().Update(context.Background(), node, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		root := t.TempDir()
		a, r := workerAgent(cs, root)
		a.handleRebootRequest(context.Background(), logr.Discard())
		n, _ := a.lister()
		if r.n != 0 || n.Annotations[v1alpha1.AnnotationRebootAck] != "" {
			t.Errorf("%s: %d reboots, ack %q", name, r.n, n.Annotations[v1alpha1.AnnotationRebootAck])
		}
		if entries, _ := os.ReadDir(root); len(entries) != 0 {
			t.Errorf("%s: files written: %v", name, entries)
		}
	}
}

// Without its key (no Secret, or one the agent may not read) the agent
// carries nothing out.
func TestNoKeyNoReboot(t *testing.T) {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "worker-1", Annotations: map[string]string{v1alpha1.AnnotationRebootRequest: "uid"}},
		Spec: corev1.NodeSpec{Unschedulable: true}}
	sign(node)
	cs := fake.NewClientset(node)
	a, r := workerAgent(cs, "")
	a.handleRebootRequest(context.Background(), logr.Discard())
	if r.n != 0 {
		t.Fatalf("%d reboots without a key", r.n)
	}
	if err := a.verifySignature(context.Background(), node, "uid"); err == nil || !strings.Contains(err.Error(), signing.SecretName) {
		t.Fatalf("%v", err)
	}
}

// The agent writes under its own directories only, whatever the manager
// signed: a signed update with a static pod manifest is refused.
func TestTheAgentsOwnAllowList(t *testing.T) {
	spec, contents := updateOf(nodeupdate.File{Path: "/etc/kubernetes/manifests/x.yaml", Content: "kind: Pod\n"})
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "worker-1", Annotations: map[string]string{
		v1alpha1.AnnotationRebootRequest: "uid", v1alpha1.AnnotationUpdate: nodeupdate.Encode(spec)}}, Spec: corev1.NodeSpec{Unschedulable: true}}
	cs := signedClientset(node)
	if err := cs.Tracker().Add(contents); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	a, r := workerAgent(cs, root)
	a.handleRebootRequest(context.Background(), logr.Discard())
	if _, err := os.Stat(filepath.Join(root, "etc/kubernetes/manifests/x.yaml")); err == nil || r.n != 0 {
		t.Fatalf("the manifest was written (%v) or the node rebooted (%d)", err, r.n)
	}
	if st := statusOf(t, a); st.Result != nodeupdate.Failed || !strings.Contains(st.Message, "not under a directory this agent writes") {
		t.Fatalf("%+v", st)
	}
}

// A forged request left on the node is checked once: the Node events that
// follow (status updates, heartbeats) read the key no more; a request
// signed anew is checked again.
func TestAForgedRequestIsCheckedOnce(t *testing.T) {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "worker-1", Annotations: map[string]string{v1alpha1.AnnotationRebootRequest: "uid"}},
		Spec: corev1.NodeSpec{Unschedulable: true}}
	cs := signedClientset(node)
	node.Annotations[v1alpha1.AnnotationRebootSignature] = "v1.9999999999.AAAA"
	if _, err := cs.CoreV1().Nodes().Update(context.Background(), node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	reads := 0
	cs.PrependReactor("get", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) { reads++; return false, nil, nil })
	a, r := workerAgent(cs, "")
	for range 5 {
		a.handleRebootRequest(context.Background(), logr.Discard())
	}
	if reads != 1 || r.n != 0 {
		t.Fatalf("%d key reads and %d reboots for 5 events of one forged request, want 1 and 0", reads, r.n)
	}
	sign(node)
	if _, err := cs.CoreV1().Nodes().Update(context.Background(), node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	a.handleRebootRequest(context.Background(), logr.Discard())
	if reads != 2 || r.n != 1 {
		t.Fatalf("the request signed by the manager: %d key reads, %d reboots; want 2 and 1", reads, r.n)
	}
}
