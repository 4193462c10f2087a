package agent

import (
	"context"
	"errors"
	"fmt"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/nodes"
	"github.com/nodecycle/nodecycle/internal/nodeupdate"
)

// errNoHostRoot refuses updates on an agent that cannot reach the node's files.
var errNoHostRoot = errors.New("this agent does not apply in-place updates: it runs without --host-root (the node's root file system mounted in its container)")

// applyUpdate writes the files of the update the Node carries with its
// reboot request. It returns the Written status to record with the ack
// (nil when the request carries no update), or false when the update
// failed: then the failure is on the Node and the reboot is not done.
func (a *Agent) applyUpdate(ctx context.Context, log logr.Logger, node *corev1.Node) (*nodeupdate.Status, bool) {
	spec, err := nodeupdate.Of(node)
	if spec == nil && err == nil {
		return nil, true
	}
	boot := nodes.BootID(node)
	id := ""
	if spec != nil {
		id = spec.ID
		if a.HostRoot == "" {
			err = errNoHostRoot
		} else {
			var files []nodeupdate.File
			if files, err = a.contents(ctx, spec); err == nil {
				err = nodeupdate.Write(a.HostRoot, a.updatePaths(), files)
			}
		}
	}
	if err != nil {
		failed := nodeupdate.Status{ID: id, BootID: boot, Result: nodeupdate.Failed, Message: "writing the update's files: " + err.Error()}
		if old, ok := nodeupdate.StatusOf(node); !ok || old != failed {
			log.Error(err, "In-place update not applied; the reboot is not done", "update", id)
			a.setUpdateStatus(ctx, log, failed)
		}
		return nil, false
	}
	log.Info("In-place update written", "update", id, "files", len(spec.Files))
	return &nodeupdate.Status{ID: id, BootID: boot, Result: nodeupdate.Written}, true
}

// verifyUpdate checks, on the first boot after an update was written, that
// its files are in place (nothing at boot replaced them), and reports
// Verified or Failed on that boot: the proof the manager waits for.
func (a *Agent) verifyUpdate(ctx context.Context, log logr.Logger) {
	node, err := a.lister()
	if err != nil {
		return
	}
	spec, err := nodeupdate.Of(node)
	st, ok := nodeupdate.StatusOf(node)
	boot := nodes.BootID(node)
	if err != nil || spec == nil || !ok || st.ID != spec.ID || st.Result != nodeupdate.Written || st.BootID == boot || boot == "" {
		return
	}
	verified := nodeupdate.Status{ID: spec.ID, BootID: boot, Result: nodeupdate.Verified}
	if a.HostRoot == "" {
		err = errNoHostRoot
	} else {
		err = nodeupdate.Verify(a.HostRoot, spec.Files)
	}
	if err != nil {
		verified.Result, verified.Message = nodeupdate.Failed, "after the reboot: "+err.Error()
		log.Error(err, "In-place update not in place after the reboot", "update", spec.ID)
	} else {
		log.Info("In-place update verified on the new boot", "update", spec.ID, "bootID", boot)
	}
	a.setUpdateStatus(ctx, log, verified)
}

// contents reads the update's files from its content Secret (in the
// agent's namespace), each checked against the digest the manager signed.
func (a *Agent) contents(ctx context.Context, spec *v1alpha1.UpdateSpec) ([]nodeupdate.File, error) {
	if spec.ContentSecret == "" {
		return nil, errors.New("the update names no content Secret")
	}
	secret, err := a.Client.CoreV1().Secrets(a.Namespace).Get(ctx, spec.ContentSecret, metav1.GetOptions{})
	if err != nil {
		a.Metrics.apiErrors.Inc()
		return nil, fmt.Errorf("reading the update's content Secret %s/%s: %w", a.Namespace, spec.ContentSecret, err)
	}
	return nodeupdate.Contents(spec, secret.Data)
}

func (a *Agent) updatePaths() []string {
	if len(a.UpdatePaths) == 0 {
		return nodeupdate.DefaultPaths
	}
	return a.UpdatePaths
}

func (a *Agent) setUpdateStatus(ctx context.Context, log logr.Logger, st nodeupdate.Status) {
	v := st.String()
	updated, err := a.Client.CoreV1().Nodes().Patch(ctx, a.NodeName, types.MergePatchType,
		nodes.AnnotationsPatch(map[string]*string{v1alpha1.AnnotationUpdateStatus: &v}), metav1.PatchOptions{})
	if err != nil {
		a.Metrics.apiErrors.Inc()
		log.Error(err, "Reporting the in-place update", "update", st.ID, "result", st.Result)
		return
	}
	a.writtenRV = updated.ResourceVersion
}
