package cluster

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/drain"
)

// Workload reaches the Nodes and Pods of one cluster.
type Workload struct {
	// Client reads Nodes from a cache and writes to the cluster.
	Client client.Client
	// Reader reads live from the cluster's API server (Pods, and whatever
	// must not be stale).
	Reader client.Reader
	// Config reaches the cluster's API server for watches of a few objects
	// (the pods of a node being drained); nil when there is none.
	Config *rest.Config
	// AgentNamespace is where the cluster's agents run, and where their
	// request key Secret lives (internal/signing).
	AgentNamespace string
}

// WorkloadAgentNamespace is the agents' namespace in a Cluster API
// workload cluster (config/workload, as the manager installs it).
const WorkloadAgentNamespace = "nodecycle-system"

// Target is what a NodeCycle's work needs of the cluster its node lives in.
// In the local mode it is the manager's own cluster and the node is all
// there is; in Cluster API mode the node has a Machine in the management
// cluster, whose Cluster can be paused and whose MachineHealthChecks must
// be kept off while the node is only rebooting.
type Target interface {
	// Workload reaches the node's cluster.
	Workload() Workload
	// Events records Events about the node: on the Node, and on its
	// Machine where it has one.
	Events
	// Paused says, when not empty, why no new operation may start now;
	// updating: the operation is an in-place update Cluster API asked for.
	Paused(ctx context.Context, updating bool) (string, error)
	// Machine names the Cluster API Machine behind the node; "" when there
	// is none (the replace strategy needs one).
	Machine() string
	// PauseRemediation keeps MachineHealthChecks off the node's Machine for
	// the operation of owner (namespace/name of the NodeCycle); paused says
	// it did so now. A no-op without a Machine.
	PauseRemediation(ctx context.Context, owner string) (paused bool, err error)
	// ResumeRemediation undoes PauseRemediation of owner, and nothing else.
	ResumeRemediation(ctx context.Context, owner string) error
	// DrainRules says how the drain treats each pod (Cluster API's
	// MachineDrainRules and drain label); nil: every pod is drained.
	DrainRules(ctx context.Context) (func(*corev1.Pod) drain.Rule, error)
}

// Clusters hands out the Target of each NodeCycle and brings the Node
// events of the clusters it serves to the reconcilers.
type Clusters interface {
	// Target returns the NodeCycle's cluster; an error says why it cannot be
	// reached now.
	Target(ctx context.Context, nc *v1alpha1.NodeCycle) (Target, error)
	// Gone reports whether the NodeCycle's cluster no longer exists.
	Gone(ctx context.Context, nc *v1alpha1.NodeCycle) (bool, error)
	// MachineGone reports whether the NodeCycle's node went with its
	// Machine (replaced, scaled away); ErrNoMachine for a node without one.
	MachineGone(ctx context.Context, nc *v1alpha1.NodeCycle) (bool, error)
	// Watch adds to b the watches that bring Node events (through
	// nodeEvents of the node's namespace and cluster) and cluster changes to
	// the NodeCycle controller; clusterCycles maps a changed cluster to its
	// NodeCycles.
	Watch(b *builder.Builder, nodeEvents func(namespace, cluster string) handler.EventHandler, clusterCycles handler.MapFunc) *builder.Builder
	// WatchNodes sends the Node events of the cluster to h of controller c,
	// once per name and connection; a no-op where the manager watches
	// Nodes through Watch.
	WatchNodes(ctx context.Context, namespace, cluster, name string, c controller.Controller, h handler.EventHandler) error
	// Nodes returns the cached Nodes of every cluster whose Nodes are
	// watched, by cluster ("namespace/name"; "" for the local cluster).
	// They are the caches' own objects, not copies (a scrape reads every
	// Node of every cluster): read them, never change them.
	Nodes(ctx context.Context) (map[string][]corev1.Node, error)
}

// ErrNoMachine says a NodeCycle's node has no Cluster API Machine.
var ErrNoMachine = errors.New("the node has no Cluster API Machine")

// Local is the cluster the manager runs in: no Machines, never paused,
// never gone. Events are recorded on the Node.
type Local struct {
	W        Workload
	Recorder events.EventRecorder
}

var _ Clusters = Local{}

// Target implements Clusters.
func (l Local) Target(_ context.Context, nc *v1alpha1.NodeCycle) (Target, error) {
	if nc.Spec.ClusterName != "" {
		return nil, fmt.Errorf("cluster %q: this manager handles only the cluster it runs in (Cluster API mode is off)", nc.Spec.ClusterName)
	}
	return localTarget{w: l.W, NodeEvents: NodeEvents{Recorder: l.Recorder}}, nil
}

// Gone implements Clusters.
func (Local) Gone(context.Context, *v1alpha1.NodeCycle) (bool, error) { return false, nil }

// MachineGone implements Clusters.
func (Local) MachineGone(context.Context, *v1alpha1.NodeCycle) (bool, error) {
	return false, ErrNoMachine
}

// Watch implements Clusters: the manager's own Nodes.
func (Local) Watch(b *builder.Builder, nodeEvents func(namespace, cluster string) handler.EventHandler, _ handler.MapFunc) *builder.Builder {
	return b.Watches(&corev1.Node{}, nodeEvents("", ""))
}

// WatchNodes implements Clusters: the local Nodes are watched through Watch.
func (Local) WatchNodes(context.Context, string, string, string, controller.Controller, handler.EventHandler) error {
	return nil
}

// Nodes implements Clusters.
func (l Local) Nodes(ctx context.Context) (map[string][]corev1.Node, error) {
	var list corev1.NodeList
	if err := l.W.Client.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	return map[string][]corev1.Node{"": list.Items}, nil
}

type localTarget struct {
	w Workload
	NodeEvents
}

func (t localTarget) Workload() Workload                                   { return t.w }
func (localTarget) Paused(context.Context, bool) (string, error)           { return "", nil }
func (localTarget) Machine() string                                        { return "" }
func (localTarget) PauseRemediation(context.Context, string) (bool, error) { return false, nil }
func (localTarget) ResumeRemediation(context.Context, string) error        { return nil }
func (localTarget) DrainRules(context.Context) (func(*corev1.Pod) drain.Rule, error) {
	return nil, nil
}
