package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/nodeupdate"
)

// updateAgent is an agent of node worker-1, cordoned by nodecycle with a
// reboot request that carries an update, on boot b1.
func updateAgent(t *testing.T, root string) (*Agent, *fake.Clientset, *countingRebooter) {
	t.Helper()
	spec, contents := updateOf(nodeupdate.File{Path: "/etc/sysctl.d/90-a.conf", Content: "a = 2\n"})
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "worker-1", Annotations: map[string]string{
			v1alpha1.AnnotationRebootRequest: "ns/nc/uid", v1alpha1.AnnotationCordonedBy: "ns/nc", v1alpha1.AnnotationUpdate: nodeupdate.Encode(spec)}},
		Spec:   corev1.NodeSpec{Unschedulable: true},
		Status: corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{BootID: "b1"}},
	}
	cs := signedClientset(node)
	if err := cs.Tracker().Add(contents); err != nil {
		t.Fatal(err)
	}
	a, r := workerAgent(cs, root)
	return a, cs, r
}

func statusOf(t *testing.T, a *Agent) nodeupdate.Status {
	t.Helper()
	n, _ := a.lister()
	st, ok := nodeupdate.StatusOf(n)
	if !ok {
		t.Fatalf("no update status on the Node: %v", n.Annotations)
	}
	return st
}

// The files are written before the ack, recorded Written on the old boot
// with it; after the reboot the agent verifies them on the new boot.
func TestAnUpdateIsWrittenBeforeTheRebootAndVerifiedAfter(t *testing.T) {
	root := t.TempDir()
	a, cs, r := updateAgent(t, root)
	ctx := context.Background()
	a.verifyUpdate(ctx, logr.Discard()) // nothing written yet: nothing to verify
	a.handleRebootRequest(ctx, logr.Discard())
	if r.n != 1 {
		t.Fatalf("%d reboots, want 1", r.n)
	}
	if got, _ := os.ReadFile(filepath.Join(root, "/etc/sysctl.d/90-a.conf")); string(got) != "a = 2\n" {
		t.Fatalf("file: %q", got)
	}
	n, _ := a.lister()
	if st := statusOf(t, a); st.Result != nodeupdate.Written || st.BootID != "b1" || n.Annotations[v1alpha1.AnnotationRebootAck] != "ns/nc/uid" {
		t.Fatalf("after the ack: %+v, ack %q", st, n.Annotations[v1alpha1.AnnotationRebootAck])
	}
	a.verifyUpdate(ctx, logr.Discard()) // same boot: not yet
	if st := statusOf(t, a); st.Result != nodeupdate.Written {
		t.Fatalf("verified before the reboot: %+v", st)
	}
	n.Status.NodeInfo.BootID = "b2"
	if _, err := cs.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	a.verifyUpdate(ctx, logr.Discard())
	if st := statusOf(t, a); st.Result != nodeupdate.Verified || st.BootID != "b2" {
		t.Fatalf("after the reboot: %+v", st)
	}
}

// Files changed at boot (something rewrote them) fail the verification.
func TestAnUpdateUndoneAtBootFails(t *testing.T) {
	root := t.TempDir()
	a, cs, _ := updateAgent(t, root)
	ctx := context.Background()
	a.handleRebootRequest(ctx, logr.Discard())
	if err := os.WriteFile(filepath.Join(root, "/etc/sysctl.d/90-a.conf"), []byte("a = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	n, _ := a.lister()
	n.Status.NodeInfo.BootID = "b2"
	if _, err := cs.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	a.verifyUpdate(ctx, logr.Discard())
	if st := statusOf(t, a); st.Result != nodeupdate.Failed || st.BootID != "b2" || !strings.Contains(st.Message, "after the reboot: file /etc/sysctl.d/90-a.conf: content is not the update's") {
		t.Fatalf("%+v", st)
	}
}

// An agent that cannot write the files (no --host-root) does not
// acknowledge the request nor reboot, and says why on the Node, once.
func TestAnUpdateThatCannotBeWrittenIsNotRebootedFor(t *testing.T) {
	a, cs, r := updateAgent(t, "")
	ctx := context.Background()
	a.handleRebootRequest(ctx, logr.Discard())
	a.handleRebootRequest(ctx, logr.Discard())
	if r.n != 0 {
		t.Fatalf("%d reboots, want none", r.n)
	}
	n, _ := a.lister()
	if ack, ok := n.Annotations[v1alpha1.AnnotationRebootAck]; ok {
		t.Fatalf("acknowledged: %q", ack)
	}
	if st := statusOf(t, a); st.Result != nodeupdate.Failed || !strings.Contains(st.Message, "--host-root") {
		t.Fatalf("%+v", st)
	}
	patches := 0
	for _, act := range cs.Actions() {
		if act.GetVerb() == "patch" {
			patches++
		}
	}
	if patches != 1 {
		t.Errorf("%d patches, want the one failure report", patches)
	}
}
