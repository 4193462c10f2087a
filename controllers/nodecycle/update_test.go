package nodecycle

import (
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/nodeupdate"
)

var testUpdate = &v1alpha1.UpdateSpec{ID: "u1", Source: "Machine ns/pool-1", ContentSecret: "nodecycle-update-test",
	Files: nodeupdate.Spec([]nodeupdate.File{{Path: "/etc/sysctl.d/90-a.conf", Content: "a = 2\n"}})}

// openUpdate creates the node's NodeCycle carrying an in-place update, as
// the extension's request resolves to.
func (h *harness) openUpdate() {
	h.t.Helper()
	spec := h.cfg.CycleSpec(testNode, nil)
	spec.BootID, spec.Attempt, spec.Update = "boot-1", 1, testUpdate
	h.create(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: testUpdate.ContentSecret},
		Data: nodeupdate.SecretData([]nodeupdate.File{{Path: "/etc/sysctl.d/90-a.conf", Content: "a = 2\n"}})})
	h.create(&v1alpha1.NodeCycle{ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: testCycle, UID: "uid-1"}, Spec: spec})
}

func (h *harness) reportUpdate(result nodeupdate.Result, boot, message string) {
	st := nodeupdate.Status{ID: testUpdate.ID, BootID: boot, Result: result, Message: message}.String()
	h.editNode(func(n *corev1.Node) { n.Annotations[v1alpha1.AnnotationUpdateStatus] = st })
}

// The update rides on the reboot request, and a new boot proves nothing
// until the agent verified the files on it: not a report of the old
// boot, only one of the new. The uncordon takes the update off the Node.
func TestAnUpdateIsProvenOnlyByTheAgentsCheckOnTheNewBoot(t *testing.T) {
	h := newHarness(t)
	h.openUpdate()
	h.runUntil(v1alpha1.PhaseWaitingForNodeReady)
	got, err := nodeupdate.Of(h.node())
	if err != nil || got == nil || got.ID != "u1" || got.Files[0].SHA256 != nodeupdate.Digest("a = 2\n") || got.ContentSecret != testUpdate.ContentSecret {
		t.Fatalf("the Node's update: %+v, %v", got, err)
	}
	if v := h.node().Annotations[v1alpha1.AnnotationUpdate]; strings.Contains(v, "a = 2") {
		t.Fatalf("the Node's annotation holds the content: %s", v)
	}
	h.reportUpdate(nodeupdate.Written, "boot-1", "")
	h.boot("boot-2")
	h.settle()
	if nc := h.cycle(); nc.Status.Phase != v1alpha1.PhaseWaitingForNodeReady {
		t.Fatalf("phase %s on a new boot the agent did not check", nc.Status.Phase)
	}
	h.reportUpdate(nodeupdate.Verified, "boot-1", "")
	h.settle()
	if nc := h.cycle(); nc.Status.Phase != v1alpha1.PhaseWaitingForNodeReady {
		t.Fatalf("phase %s with the files verified on the old boot", nc.Status.Phase)
	}
	h.reportUpdate(nodeupdate.Verified, "boot-2", "")
	h.runUntil(v1alpha1.PhaseSucceeded)
	if _, ok := h.node().Annotations[v1alpha1.AnnotationUpdate]; ok || h.node().Spec.Unschedulable {
		t.Errorf("the Node keeps the update or the cordon: %v", h.node().Annotations)
	}
	if st, ok := nodeupdate.StatusOf(h.node()); !ok || st.Result != nodeupdate.Verified {
		t.Errorf("the agent's report is gone: %+v", st)
	}
	// I6: the contents went with the update.
	if err := h.c.Get(h.ctx, client.ObjectKey{Namespace: testNamespace, Name: testUpdate.ContentSecret}, &corev1.Secret{}); !apierrors.IsNotFound(err) {
		t.Errorf("the update's content Secret is still there: %v", err)
	}
	if r := h.reasons(); !slices.Contains(r, string(v1alpha1.ReasonUpdateVerified)) {
		t.Errorf("no %s Event: %v", v1alpha1.ReasonUpdateVerified, r)
	}
}

// Files the agent could not write (it did not reboot) fail the NodeCycle
// UpdateFailed at once, not at the reboot timeout: the request goes, the
// node is uncordoned.
func TestAnUpdateTheAgentCouldNotWriteFails(t *testing.T) {
	h := newHarness(t)
	h.openUpdate()
	h.runUntil(v1alpha1.PhaseWaitingForNodeReady)
	start := h.clock.Now()
	h.reportUpdate(nodeupdate.Failed, "boot-1", "writing the update's files: no --host-root")
	h.runUntil(v1alpha1.PhaseFailed)
	nc := h.cycle()
	if nc.Status.Reason != v1alpha1.ReasonUpdateFailed || !strings.Contains(nc.Status.Message, "no --host-root") || h.clock.Since(start) >= time.Minute {
		t.Fatalf("%s %s after %s", nc.Status.Reason, nc.Status.Message, h.clock.Since(start))
	}
	n := h.node()
	if _, ok := n.Annotations[v1alpha1.AnnotationRebootRequest]; ok || n.Spec.Unschedulable {
		t.Errorf("the Node keeps the request or the cordon: %v", n.Annotations)
	}
	if err := h.c.Get(h.ctx, client.ObjectKey{Namespace: testNamespace, Name: testUpdate.ContentSecret}, &corev1.Secret{}); !apierrors.IsNotFound(err) {
		t.Errorf("the failed update's content Secret is still there: %v", err)
	}
}
