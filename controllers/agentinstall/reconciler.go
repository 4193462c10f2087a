// Package agentinstall installs nodecycle's agent in every Cluster API
// workload cluster whose Cluster is labelled nodecycle.io/agent, in any
// namespace: the manager applies config/workload (label value "enabled":
// the default, privileged agent) or config/workload-least-privilege (value
// "least-privilege": reboot by signal, CAP_KILL alone), each rendered by
// make generate and built into the binary, through its connection to the
// cluster, with server-side apply; changing the value switches the
// variant. Another value is reported in a Warning Event and installs
// nothing. A Cluster that loses the label keeps its agent (removing a
// DaemonSet others may rely on is an operator's decision).
package agentinstall

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/tools/events"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/cluster-api/util/annotations"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/cluster"
)

//go:embed nodecycle-agent.yaml
var manifest []byte

//go:embed nodecycle-agent-least-privilege.yaml
var leastPrivilegeManifest []byte

// The values of the label nodecycle.io/agent: which agent is installed.
const (
	VariantDefault        = "enabled"
	VariantLeastPrivilege = "least-privilege"
)

// FieldOwner is the server-side apply field manager of what is installed.
const FieldOwner = "nodecycle-manager"

// repairInterval: the agent is applied again this often, which puts back
// what someone deleted or changed by hand.
const repairInterval = 10 * time.Minute

// Reconciler applies the agent to labelled Clusters.
type Reconciler struct {
	Client   client.Client
	Clusters cluster.ClusterAPI
	Recorder events.EventRecorder
	// Image, when set, replaces the agent's image (the manager's own
	// release, say).
	Image string
	// ClusterSource tells of workload clusters that connect.
	ClusterSource source.Source

	objects map[string][]*unstructured.Unstructured // by variant
}

// Objects parses the built-in agent manifest of variant (VariantDefault or
// VariantLeastPrivilege), with image set when given.
func Objects(image, variant string) ([]*unstructured.Unstructured, error) {
	m := manifest
	switch variant {
	case VariantDefault:
	case VariantLeastPrivilege:
		m = leastPrivilegeManifest
	default:
		return nil, fmt.Errorf("unknown agent variant %q: want %s or %s", variant, VariantDefault, VariantLeastPrivilege)
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(m), 4096)
	var out []*unstructured.Unstructured
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("the built-in agent manifest: %w", err)
		}
		if len(u.Object) == 0 {
			continue
		}
		if image != "" && u.GetKind() == "DaemonSet" {
			containers, _, _ := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "containers")
			for _, c := range containers {
				c.(map[string]any)["image"] = image
			}
			if err := unstructured.SetNestedSlice(u.Object, containers, "spec", "template", "spec", "containers"); err != nil {
				return nil, err
			}
		}
		out = append(out, u)
	}
}

// Reconcile implements reconcile.Reconciler.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	c := &clusterv1.Cluster{}
	if err := r.Client.Get(ctx, req.NamespacedName, c); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	variant, labelled := c.Labels[v1alpha1.LabelAgent]
	if !labelled || !c.DeletionTimestamp.IsZero() || annotations.IsPaused(c, c) {
		return reconcile.Result{}, nil
	}
	objects, known := r.objects[variant]
	if !known {
		r.Recorder.Eventf(c, nil, corev1.EventTypeWarning, string(v1alpha1.ReasonAgentInstallFailed), "Install",
			"Label %s=%q names no agent: want %s (the default agent) or %s (reboot by signal, CAP_KILL alone); nothing was installed",
			v1alpha1.LabelAgent, variant, VariantDefault, VariantLeastPrivilege)
		return reconcile.Result{}, nil
	}
	w, err := r.Clusters.Workload(ctx, c.Namespace, c.Name)
	if err != nil {
		// Not connected yet: the connection's connect event comes back here.
		logf.FromContext(ctx).V(1).Info("Workload cluster not reachable yet; the agent is installed once it is", "error", err.Error())
		return reconcile.Result{RequeueAfter: time.Minute}, nil
	}
	for _, obj := range objects {
		u := obj.DeepCopy()
		if err := w.Client.Patch(ctx, u, client.Apply, client.FieldOwner(FieldOwner), client.ForceOwnership); err != nil { //nolint:staticcheck // unstructured objects: client.Apply is the way
			r.Recorder.Eventf(c, nil, corev1.EventTypeWarning, string(v1alpha1.ReasonAgentInstallFailed), "Install",
				"Installing the nodecycle agent in the workload cluster failed at %s %s: %v", u.GetKind(), u.GetName(), err)
			return reconcile.Result{}, fmt.Errorf("applying %s %s: %w", u.GetKind(), u.GetName(), err)
		}
	}
	logf.FromContext(ctx).V(1).Info("Agent applied to the workload cluster", "variant", variant, "objects", len(objects))
	return reconcile.Result{RequeueAfter: repairInterval}, nil
}

// SetupWithManager registers the Reconciler.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	r.objects = map[string][]*unstructured.Unstructured{}
	for _, variant := range []string{VariantDefault, VariantLeastPrivilege} {
		objs, err := Objects(r.Image, variant)
		if err != nil {
			return err
		}
		r.objects[variant] = objs
	}
	labelled := predicate.NewPredicateFuncs(func(o client.Object) bool { _, ok := o.GetLabels()[v1alpha1.LabelAgent]; return ok })
	b := ctrl.NewControllerManagedBy(mgr).
		Named("nodecycle-agent-install").
		For(&clusterv1.Cluster{}, builder.WithPredicates(labelled, predicate.Or(predicate.LabelChangedPredicate{}, predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{})))
	if r.ClusterSource != nil {
		b = b.WatchesRawSource(r.ClusterSource)
	}
	return b.Complete(r)
}
