package inplace

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	runtimecatalog "sigs.k8s.io/cluster-api/api/runtime/catalog"
	runtimehooksv1 "sigs.k8s.io/cluster-api/api/runtime/hooks/v1alpha1"
	runtimev1 "sigs.k8s.io/cluster-api/api/runtime/v1beta2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/cluster"
	"github.com/nodecycle/nodecycle/internal/cycles"
	"github.com/nodecycle/nodecycle/internal/nodeupdate"
)

// Ladders says which strategies a Machine is opted in to (its
// MachineDeployment's or control plane's nodecycle.io/strategy): an
// in-place update needs the reboot strategy there.
type Ladders interface {
	Ladder(ctx context.Context, m *clusterv1.Machine) ([]v1alpha1.Strategy, error)
}

// Workloads reaches the workload cluster of a Cluster: the content of an
// update goes there, into a Secret that only the agent may read.
type Workloads interface {
	Workload(ctx context.Context, namespace, cluster string) (cluster.Workload, error)
}

// RequestedBy is the spec.request.requestedBy of the NodeCycles the
// extension opens.
const RequestedBy = "nodecycle in-place update extension (Cluster API UpdateMachine)"

// LabelMachine names, on a NodeCycle the extension opened, the Machine
// whose update it carries.
const LabelMachine = "nodecycle.io/in-place-update-of"

// Extension answers Cluster API's in-place update hooks.
type Extension struct {
	// Client reads and writes the management cluster (Machines,
	// NodeCycles); its cache must index NodeCycles by node.
	Client client.Client
	// Reader reads the management cluster's API server without a cache:
	// UpdateMachine's proof that Cluster API marked the Machine, and the
	// files of its bootstrap configuration, are never taken from a stale
	// copy (nil: Client).
	Reader    client.Reader
	Ladders   Ladders
	Workloads Workloads
	Rules     Rules
	// Poll is the retry delay UpdateMachine answers while its NodeCycle
	// runs (Cluster API calls again after it).
	Poll time.Duration
	Log  logr.Logger
}

// CanUpdateMachineSet covers, with a patch, a change of a MachineSet's
// bootstrap configuration template's files that nodecycle applies in place;
// it covers nothing otherwise, and Cluster API then replaces the Machines.
func (e *Extension) CanUpdateMachineSet(ctx context.Context, req *runtimehooksv1.CanUpdateMachineSetRequest, resp *runtimehooksv1.CanUpdateMachineSetResponse) {
	resp.SetStatus(runtimehooksv1.ResponseStatusSuccess)
	ms := &req.Current.MachineSet
	m := &clusterv1.Machine{ObjectMeta: metav1.ObjectMeta{Namespace: ms.Namespace, Name: ms.Name, Labels: ms.Labels}}
	patch, why := e.canUpdate(ctx, m, req.Current.BootstrapConfigTemplate, req.Desired.BootstrapConfigTemplate, true)
	e.answer(ms, "MachineSet", why)
	resp.SetMessage(why)
	if patch != nil {
		resp.BootstrapConfigTemplatePatch = *patch
	}
}

// CanUpdateMachine is CanUpdateMachineSet for one Machine (a control
// plane's, whose provider asks Machine by Machine).
func (e *Extension) CanUpdateMachine(ctx context.Context, req *runtimehooksv1.CanUpdateMachineRequest, resp *runtimehooksv1.CanUpdateMachineResponse) {
	resp.SetStatus(runtimehooksv1.ResponseStatusSuccess)
	m := &clusterv1.Machine{}
	if err := e.Client.Get(ctx, client.ObjectKeyFromObject(&req.Current.Machine), m); err != nil {
		resp.SetMessage(fmt.Sprintf("reading Machine %s: %v", req.Current.Machine.Name, err))
		return
	}
	patch, why := e.canUpdate(ctx, m, req.Current.BootstrapConfig, req.Desired.BootstrapConfig, false)
	e.answer(m, "Machine", why)
	resp.SetMessage(why)
	if patch != nil {
		resp.BootstrapConfigPatch = *patch
	}
}

func (e *Extension) answer(o metav1.Object, kind, why string) {
	if why != "" {
		e.Log.Info("Not an in-place update", kind, o.GetNamespace()+"/"+o.GetName(), "why", why)
		return
	}
	e.Log.Info("In-place update covered", kind, o.GetNamespace()+"/"+o.GetName())
}

// canUpdate is the patch that makes the current configuration's files the
// desired ones, or why there is none.
func (e *Extension) canUpdate(ctx context.Context, m *clusterv1.Machine, current, desired runtime.RawExtension, template bool) (*runtimehooksv1.Patch, string) {
	ladder, err := e.Ladders.Ladder(ctx, m)
	switch {
	case err != nil:
		return nil, fmt.Sprintf("nodecycle: %v", err)
	case !slices.Contains(ladder, v1alpha1.StrategyReboot):
		return nil, fmt.Sprintf("nodecycle: not opted in to in-place updates: the strategy annotation %s of the Machines' owner must include reboot (it is %v)", v1alpha1.AnnotationStrategy, ladder)
	}
	cur, _, err := files(current, template)
	if err != nil {
		return nil, fmt.Sprintf("nodecycle: current bootstrap configuration: %v", err)
	}
	des, _, err := files(desired, template)
	if err != nil {
		return nil, fmt.Sprintf("nodecycle: desired bootstrap configuration: %v", err)
	}
	changed, err := e.Rules.Plan(cur, des)
	if err != nil {
		return nil, "nodecycle: " + err.Error()
	}
	if len(changed) == 0 {
		return nil, "nodecycle: no file of the bootstrap configuration changes"
	}
	path := []string{"spec", "files"}
	if template {
		path = []string{"spec", "template", "spec", "files"}
	}
	value, err := rawFiles(desired, path)
	if err != nil {
		return nil, "nodecycle: " + err.Error()
	}
	ops, _ := json.Marshal([]map[string]any{{"op": "add", "path": "/" + strings.Join(path, "/"), "value": value}})
	return &runtimehooksv1.Patch{PatchType: runtimehooksv1.JSONPatchType, Patch: ops}, ""
}

// UpdateMachine applies the desired configuration's files to the Machine's
// node with a reboot: it opens a NodeCycle that carries them (named after
// the Machine and the files, so that every call for the same update finds
// the same one, across manager restarts), then answers from its phase: in
// progress (call again), done once the node rebooted with the files in
// place, failed when it failed. A failed NodeCycle stays the answer until
// someone deletes it; the next call then opens a new one.
func (e *Extension) UpdateMachine(ctx context.Context, req *runtimehooksv1.UpdateMachineRequest, resp *runtimehooksv1.UpdateMachineResponse) {
	resp.SetStatus(runtimehooksv1.ResponseStatusSuccess)
	fail := func(format string, args ...any) {
		resp.SetStatus(runtimehooksv1.ResponseStatusFailure)
		resp.SetMessage(fmt.Sprintf(format, args...))
		e.Log.Info("In-place update failed", "Machine", req.Desired.Machine.Namespace+"/"+req.Desired.Machine.Name, "message", resp.Message)
	}
	wait := func(format string, args ...any) {
		resp.RetryAfterSeconds = int32(max(e.Poll, time.Second) / time.Second)
		resp.SetMessage(fmt.Sprintf(format, args...))
	}
	m, des, err := e.marked(ctx, req)
	if err != nil {
		fail("nodecycle: %v", err)
		return
	}
	node := m.Status.NodeRef.Name
	if node == "" {
		wait("Machine %s has no Node yet", m.Name)
		return
	}
	writes := e.Rules.Writes(des)
	if len(writes) == 0 {
		resp.SetMessage("nodecycle: no file to write")
		return
	}
	id := nodeupdate.ID(nodeupdate.Spec(writes))
	key := client.ObjectKey{Namespace: m.Namespace, Name: cycleName(m.Name, id)}
	nc := &v1alpha1.NodeCycle{}
	err = e.Client.Get(ctx, key, nc)
	if apierrors.IsNotFound(err) {
		other, oerr := e.openOther(ctx, m, node, key.Name)
		switch {
		case oerr != nil:
			fail("%v", oerr)
		case other != "":
			wait("node %s has NodeCycle %s open; the update starts after it", node, other)
		default:
			spec := &v1alpha1.UpdateSpec{ID: id, Source: "Machine " + m.Namespace + "/" + m.Name, ContentSecret: ContentSecretName(key), Files: nodeupdate.Spec(writes)}
			if err = e.storeContents(ctx, m, spec, writes); err != nil {
				wait("writing the update's contents to the workload cluster of %s: %v", m.Spec.ClusterName, err)
				return
			}
			err = e.open(ctx, m, key, node, spec)
			if err != nil {
				fail("opening NodeCycle %s: %v", key.Name, err)
				return
			}
			wait("NodeCycle %s opened for node %s: reboot with %d files", key.Name, node, len(writes))
		}
		return
	}
	if err != nil {
		fail("reading NodeCycle %s: %v", key.Name, err)
		return
	}
	st := &nc.Status
	switch st.Phase {
	case v1alpha1.PhaseSucceeded:
		resp.SetMessage(fmt.Sprintf("NodeCycle %s: node %s rebooted (boot ID %q -> %q) with update %s in place", nc.Name, node, st.BootIDBefore, st.BootIDAfter, id))
		e.Log.Info("In-place update done", "Machine", m.Namespace+"/"+m.Name, "NodeCycle", nc.Name)
	case v1alpha1.PhaseFailed, v1alpha1.PhaseSkipped:
		fail("NodeCycle %s %s (%s): %s; delete it to try again", nc.Name, st.Phase, st.Reason, st.Message)
	default:
		phase := st.Phase
		if phase == "" {
			phase = v1alpha1.PhasePending
		}
		wait("NodeCycle %s: %s: %s", nc.Name, phase, st.Message)
	}
}

// marked is the Machine of an UpdateMachine request and the files of its
// bootstrap configuration, both read from the API server, never from the
// request: the Machine must be the one named (same UID), marked by Cluster
// API for an in-place update (its update-in-progress annotation, and
// UpdateMachine among its pending hooks), and its bootstrap configuration
// (spec.bootstrap.configRef) marked too. A request whose files differ
// from the stored ones is refused: whoever sent it is not Cluster API, or
// the configuration changed under it.
func (e *Extension) marked(ctx context.Context, req *runtimehooksv1.UpdateMachineRequest) (*clusterv1.Machine, map[string]bootstrapFile, error) {
	reader := e.Reader
	if reader == nil {
		reader = e.Client
	}
	named := &req.Desired.Machine
	m := &clusterv1.Machine{}
	if err := reader.Get(ctx, client.ObjectKeyFromObject(named), m); err != nil {
		return nil, nil, fmt.Errorf("reading Machine %s/%s: %w", named.Namespace, named.Name, err)
	}
	hook := runtimecatalog.HookName(runtimehooksv1.UpdateMachine)
	_, inProgress := m.Annotations[clusterv1.UpdateInProgressAnnotation]
	switch {
	case named.UID != "" && named.UID != m.UID:
		return nil, nil, fmt.Errorf("Machine %s/%s has UID %s, the request names %s", m.Namespace, m.Name, m.UID, named.UID)
	case !inProgress || !slices.Contains(strings.Split(m.Annotations[runtimev1.PendingHooksAnnotation], ","), hook):
		return nil, nil, fmt.Errorf("Machine %s/%s is not marked by Cluster API for an in-place update (annotation %s and %s in %s): nothing is done", m.Namespace, m.Name, clusterv1.UpdateInProgressAnnotation, hook, runtimev1.PendingHooksAnnotation)
	case !m.Spec.Bootstrap.ConfigRef.IsDefined():
		return nil, nil, fmt.Errorf("Machine %s/%s has no bootstrap configuration", m.Namespace, m.Name)
	}
	stored, err := e.bootstrapConfig(ctx, reader, m, req.Desired.BootstrapConfig)
	if err != nil {
		return nil, nil, err
	}
	if _, marked := stored.GetAnnotations()[clusterv1.UpdateInProgressAnnotation]; !marked {
		return nil, nil, fmt.Errorf("%s %s/%s is not marked by Cluster API for an in-place update (annotation %s)", stored.GetKind(), m.Namespace, stored.GetName(), clusterv1.UpdateInProgressAnnotation)
	}
	des, _, err := files(runtime.RawExtension{Object: stored}, false)
	if err != nil {
		return nil, nil, fmt.Errorf("bootstrap configuration %s: %w", stored.GetName(), err)
	}
	asked, _, err := files(req.Desired.BootstrapConfig, false)
	if err != nil {
		return nil, nil, fmt.Errorf("the request's bootstrap configuration: %w", err)
	}
	if !sameFiles(des, asked) {
		return nil, nil, fmt.Errorf("the request's files differ from those of %s %s/%s: refused", stored.GetKind(), m.Namespace, stored.GetName())
	}
	return m, des, nil
}

// bootstrapConfig reads the Machine's bootstrap configuration from the API
// server, at the apiVersion of the request's copy (a configRef names only
// the API group); the request's copy must name the same object.
func (e *Extension) bootstrapConfig(ctx context.Context, reader client.Reader, m *clusterv1.Machine, asked runtime.RawExtension) (*unstructured.Unstructured, error) {
	ref := m.Spec.Bootstrap.ConfigRef
	obj, err := decode(asked)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{Object: obj}
	gv, err := schema.ParseGroupVersion(u.GetAPIVersion())
	if obj == nil || err != nil || gv.Group != ref.APIGroup || u.GetKind() != ref.Kind || u.GetName() != ref.Name {
		return nil, fmt.Errorf("the request's bootstrap configuration is not the Machine's %s %s", ref.Kind, ref.Name)
	}
	stored := &unstructured.Unstructured{}
	stored.SetGroupVersionKind(gv.WithKind(ref.Kind))
	if err := reader.Get(ctx, client.ObjectKey{Namespace: m.Namespace, Name: ref.Name}, stored); err != nil {
		return nil, fmt.Errorf("reading %s %s/%s: %w", ref.Kind, m.Namespace, ref.Name, err)
	}
	return stored, nil
}

// openOther names another open NodeCycle of the node: the update waits
// for it (a node has one operation at a time).
func (e *Extension) openOther(ctx context.Context, m *clusterv1.Machine, node, name string) (string, error) {
	history, err := cycles.OfNode(ctx, e.Client, m.Namespace, m.Spec.ClusterName, node)
	if err != nil {
		return "", err
	}
	for _, nc := range history {
		if nc.Name != name && !nc.Status.Phase.Terminal() {
			return nc.Name, nil
		}
	}
	return "", nil
}

// open creates the update's NodeCycle: an on-demand request for the
// reboot strategy, resolved by the manager like any request (the Machine
// must be opted in; gates, slots, drain and proof as always).
func (e *Extension) open(ctx context.Context, m *clusterv1.Machine, key client.ObjectKey, node string, u *v1alpha1.UpdateSpec) error {
	nc := &v1alpha1.NodeCycle{
		ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name, Labels: map[string]string{LabelMachine: m.Name}},
		Spec: v1alpha1.NodeCycleSpec{
			NodeName:    node,
			ClusterName: m.Spec.ClusterName,
			Request: &v1alpha1.RequestSpec{
				Strategy:    v1alpha1.StrategyReboot,
				Reason:      fmt.Sprintf("Cluster API in-place update of Machine %s: %d files", m.Name, len(u.Files)),
				RequestedBy: RequestedBy,
			},
			Update: u,
		},
	}
	if err := e.Client.Create(ctx, nc); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	e.Log.Info("In-place update started", "Machine", m.Namespace+"/"+m.Name, "NodeCycle", key.Name, "update", u.ID)
	return nil
}

// ContentSecretName is the content Secret of the update NodeCycle key: one
// per NodeCycle, so that the end of one never takes another's contents.
func ContentSecretName(key client.ObjectKey) string {
	h := sha256.Sum256([]byte(key.Namespace + "/" + key.Name))
	return "nodecycle-update-" + hex.EncodeToString(h[:])[:20]
}

// storeContents writes the files' contents into the update's content
// Secret in the workload cluster's agent namespace (the NodeCycle keeps
// only their digests); one already there, from an earlier call for the
// same update, is the same.
func (e *Extension) storeContents(ctx context.Context, m *clusterv1.Machine, spec *v1alpha1.UpdateSpec, files []nodeupdate.File) error {
	if e.Workloads == nil {
		return errors.New("no workload cluster to write to")
	}
	w, err := e.Workloads.Workload(ctx, m.Namespace, m.Spec.ClusterName)
	if err != nil {
		return err
	}
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: cluster.WorkloadAgentNamespace, Name: spec.ContentSecret,
			Labels: map[string]string{"app.kubernetes.io/name": "nodecycle", LabelMachine: m.Name}},
		Type: corev1.SecretTypeOpaque,
		Data: nodeupdate.SecretData(files),
	}
	if err := w.Client.Create(ctx, s); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return nil
}

// cycleName is the NodeCycle of one update of one Machine.
func cycleName(machine, id string) string {
	suffix := "-update-" + id[:10]
	if len(machine)+len(suffix) > 253 {
		machine = machine[:253-len(suffix)]
	}
	return machine + suffix
}

// rawFiles is the files list of a configuration as it is, for the patch.
func rawFiles(raw runtime.RawExtension, path []string) ([]any, error) {
	obj, err := decode(raw)
	if err != nil {
		return nil, err
	}
	list, _, err := unstructured.NestedSlice(obj, path...)
	return list, err
}
