package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/nodes"
	"github.com/nodecycle/nodecycle/internal/signing"
)

// Agent watches one node: its sentinel and its Node object.
type Agent struct {
	NodeName string
	Client   kubernetes.Interface
	Checker  Checker
	Rebooter Rebooter
	// SentinelFile, when set, is watched with inotify (its directory, so
	// create, delete and rename are all seen) for an immediate re-check.
	SentinelFile string
	// RecheckPeriod re-runs the check in case an event was missed, and is the
	// only clock of a command checker.
	RecheckPeriod time.Duration
	// HeartbeatPeriod, when not zero, rewrites an unchanged condition this often.
	HeartbeatPeriod time.Duration
	// HostRoot is where the node's root file system is mounted in the
	// agent's container: in-place updates write their files under it.
	// Empty: the agent refuses in-place updates (and reports why).
	HostRoot string
	// UpdatePaths are the directories (ending in "/") under which an
	// in-place update may write, whatever the manager asks: nothing is
	// written elsewhere. Empty: update.DefaultPaths.
	UpdatePaths []string
	// Namespace holds the cluster's request key (the Secret
	// nodecycle-request-key): the agent carries out only requests signed
	// with it.
	Namespace string
	Clock     clock.WithTicker
	Metrics   *Metrics
	Log       logr.Logger

	lister  func() (*corev1.Node, error)
	desired *corev1.NodeCondition
	written time.Time
	// writtenRV is the resourceVersion our last write produced.
	writtenRV string
	// checkedOn is the boot ID the Node showed at the last check, shown is
	// whether the Node shows that check's result.
	checkedOn string
	shown     bool
	// refused is the last reboot request refused (logged once).
	refused string
	// badSignature is the last request (id, signature and update) whose
	// signature did not verify: not checked again, and so not a read of
	// the key at every Node event, until one of them changes.
	badSignature string
	// unsure is the request whose ack this agent sent and was told failed
	// with something other than a conflict: the API server may have made
	// it all the same. Seen on the Node, it is this agent's ack, and the
	// reboot follows.
	unsure string
	ready  chan struct{}
}

// Ready is closed once the agent watches its Node and has published its
// first condition.
func (a *Agent) Ready() <-chan struct{} {
	if a.ready == nil {
		a.ready = make(chan struct{})
	}
	return a.ready
}

// Run works until ctx is done. It returns an error when the agent cannot do
// its job at all (its Node does not exist, the API server refuses it).
func (a *Agent) Run(ctx context.Context) error {
	if a.Clock == nil {
		a.Clock = clock.RealClock{}
	}
	if a.Metrics == nil {
		a.Metrics = NewMetrics(nil)
	}
	a.Ready()
	log := a.Log.WithValues("Node", a.NodeName)

	// A Node that does not exist is a configuration error; any other error
	// (an API server restarting, overloaded) is waited out.
	for delay := 100 * time.Millisecond; ; delay = min(2*delay, 10*time.Second) {
		_, err := a.Client.CoreV1().Nodes().Get(ctx, a.NodeName, metav1.GetOptions{})
		if err == nil {
			break
		}
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("node %q does not exist: set --node-name (or NODE_NAME from the downward API) to this pod's spec.nodeName", a.NodeName)
		}
		log.Error(err, "Reading own Node; retrying", "in", delay)
		select {
		case <-ctx.Done():
			return fmt.Errorf("reading node %q: %w", a.NodeName, err)
		case <-a.Clock.After(delay):
		}
	}

	// Watch only this Node: an idle agent costs the API server one watch.
	factory := informers.NewSharedInformerFactoryWithOptions(a.Client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", a.NodeName).String()
		}))
	informer := factory.Core().V1().Nodes()
	nodeChanged := make(chan struct{}, 1)
	poke := func() {
		select {
		case nodeChanged <- struct{}{}:
		default:
		}
	}
	if _, err := informer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { poke() },
		UpdateFunc: func(any, any) { poke() },
		DeleteFunc: func(any) { poke() },
	}); err != nil {
		return fmt.Errorf("watching node %q: %w", a.NodeName, err)
	}
	lister := informer.Lister()
	a.lister = func() (*corev1.Node, error) { return lister.Get(a.NodeName) }
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), informer.Informer().HasSynced) {
		return ctx.Err()
	}

	events, closeWatch := a.watchSentinel(log)
	defer closeWatch()

	recheck := a.Clock.NewTicker(a.RecheckPeriod)
	defer recheck.Stop()

	a.check(ctx, log)
	a.verifyUpdate(ctx, log)
	a.handleRebootRequest(ctx, log)
	close(a.ready)
	log.Info("Agent started", "sentinel", a.SentinelFile, "recheckPeriod", a.RecheckPeriod)

	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-events:
			if filepath.Clean(ev.Name) == filepath.Clean(a.SentinelFile) {
				log.V(4).Info("Sentinel event", "op", ev.Op.String())
				a.check(ctx, log)
			}
		case <-recheck.C():
			a.check(ctx, log)
		case <-nodeChanged:
			if node, err := a.lister(); err == nil && nodes.BootID(node) != a.checkedOn {
				// A new boot: what was checked before it says nothing about it.
				a.check(ctx, log)
			} else if a.desired != nil {
				// Someone else may have removed or rewritten our condition.
				a.shown = a.publish(ctx, log, *a.desired)
				a.markChecked(ctx, log)
			}
			a.verifyUpdate(ctx, log)
			a.handleRebootRequest(ctx, log)
		}
	}
}

// watchSentinel watches the sentinel's directory. Without a sentinel file,
// or when the directory cannot be watched, only the periodic re-check runs.
func (a *Agent) watchSentinel(log logr.Logger) (<-chan fsnotify.Event, func()) {
	if a.SentinelFile == "" {
		return nil, func() {}
	}
	w, err := fsnotify.NewWatcher()
	if err == nil {
		err = w.Add(filepath.Dir(a.SentinelFile))
	}
	if err != nil {
		log.Error(err, "Cannot watch the sentinel directory; relying on the periodic re-check", "directory", filepath.Dir(a.SentinelFile))
		if w != nil {
			_ = w.Close()
		}
		return nil, func() {}
	}
	go func() {
		for err := range w.Errors {
			log.Error(err, "Sentinel watch error")
		}
	}()
	return w.Events, func() { _ = w.Close() }
}

func (a *Agent) check(ctx context.Context, log logr.Logger) {
	if node, err := a.lister(); err == nil {
		a.checkedOn = nodes.BootID(node)
	}
	cond := a.Checker.Check(ctx)
	a.Metrics.observe(cond)
	a.desired = &cond
	a.shown = a.publish(ctx, log, cond)
	a.markChecked(ctx, log)
}

// publish writes the condition when the Node does not already show it, when
// the heartbeat is due, and once at start. It reports whether the Node
// shows want now (or will, once the cache catches up with our write).
func (a *Agent) publish(ctx context.Context, log logr.Logger, want corev1.NodeCondition) bool {
	node, err := a.lister()
	if err != nil {
		log.Error(err, "Reading own Node from cache")
		return false
	}
	current := nodes.Condition(node, v1alpha1.ConditionRebootRequired)
	now := a.Clock.Now()
	heartbeatDue := a.written.IsZero() || (a.HeartbeatPeriod > 0 && now.Sub(a.written) >= a.HeartbeatPeriod)
	if nodes.SameCondition(current, want) && !heartbeatDue {
		return true
	}
	if olderThan(node.ResourceVersion, a.writtenRV) && !heartbeatDue {
		return true // the cache has not caught up with our own last write yet; its event will come
	}
	patch := nodes.ConditionPatch(current, want, now)
	updated, err := a.Client.CoreV1().Nodes().PatchStatus(ctx, a.NodeName, patch)
	if err != nil {
		a.Metrics.apiErrors.Inc()
		log.Error(err, "Publishing RebootRequired condition", "status", want.Status)
		return false
	}
	a.written = now
	a.writtenRV = updated.ResourceVersion
	log.Info("Published RebootRequired condition", "status", want.Status, "reason", want.Reason)
	return true
}

// markChecked records on the Node the boot on which the condition it shows
// was checked (nodecycle.io/checked-boot-id), after the condition itself:
// the manager acts on RebootRequired only for the boot named there. It
// writes once per boot.
func (a *Agent) markChecked(ctx context.Context, log logr.Logger) {
	node, err := a.lister()
	if err != nil || !a.shown || a.checkedOn == "" || a.checkedOn != nodes.BootID(node) ||
		node.Annotations[v1alpha1.AnnotationCheckedBoot] == a.checkedOn || olderThan(node.ResourceVersion, a.writtenRV) {
		return
	}
	patch := nodes.AnnotationsPatch(map[string]*string{v1alpha1.AnnotationCheckedBoot: &a.checkedOn})
	updated, err := a.Client.CoreV1().Nodes().Patch(ctx, a.NodeName, types.MergePatchType, patch, metav1.PatchOptions{})
	if err != nil {
		a.Metrics.apiErrors.Inc()
		log.Error(err, "Recording the checked boot", "bootID", a.checkedOn)
		return
	}
	a.writtenRV = updated.ResourceVersion
	log.Info("Recorded the boot the condition was checked on", "bootID", a.checkedOn)
}

// handleRebootRequest acknowledges and carries out a new reboot request. The
// ack is written before the reboot starts; a request whose id is already
// acknowledged is never carried out again, also after this agent restarts.
func (a *Agent) handleRebootRequest(ctx context.Context, log logr.Logger) {
	node, err := a.lister()
	if err != nil {
		return
	}
	id, decision := Decide(node)
	if decision == Ignore && id != "" && id == a.unsure && node.Annotations[v1alpha1.AnnotationRebootAck] == id && node.Spec.Unschedulable {
		a.unsure = ""
		log.WithValues("requestID", id).Info("Our acknowledgement was made although the API server answered an error; rebooting")
		a.reboot(ctx, log.WithValues("requestID", id))
		return
	}
	if decision == Ignore {
		return
	}
	log = log.WithValues("requestID", id)
	if decision == Refuse {
		if a.refused != id {
			a.refused = id
			a.Metrics.reboots.WithLabelValues("refused").Inc()
			log.Info("Refusing a reboot request on a node that is not cordoned, or not by nodecycle for this request", "cordonedBy", node.Annotations[v1alpha1.AnnotationCordonedBy])
		}
		return
	}
	signed := id + "\x00" + node.Annotations[v1alpha1.AnnotationRebootSignature] + "\x00" + node.Annotations[v1alpha1.AnnotationUpdate]
	if signed == a.badSignature {
		return
	}
	if err := a.verifySignature(ctx, node, id); err != nil {
		if !errors.Is(err, errNoKey) {
			a.badSignature = signed // a key that could not be read is read again
		}
		if a.refused != id {
			a.refused = id
			a.Metrics.reboots.WithLabelValues("refused").Inc()
			log.Error(err, "Refusing a reboot request that nodecycle's manager did not sign for this node; nothing is done")
		}
		return
	}
	annotations := map[string]string{v1alpha1.AnnotationRebootAck: id}
	// An in-place update rides on the request: its files are written
	// before the ack, and a request whose files cannot be written is
	// never carried out.
	if written, ok := a.applyUpdate(ctx, log, node); !ok {
		return
	} else if written != nil {
		annotations[v1alpha1.AnnotationUpdateStatus] = written.String()
	}
	// The resourceVersion precondition makes the ack fail if the request
	// changed since we read it.
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"resourceVersion": node.ResourceVersion, "annotations": annotations}})
	if _, err := a.Client.CoreV1().Nodes().Patch(ctx, a.NodeName, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		if !apierrors.IsConflict(err) {
			a.unsure = id // a timeout or a 500 may come after the write
			a.Metrics.apiErrors.Inc()
			log.Error(err, "Acknowledging reboot request")
		}
		return // the next Node event retries, or finds the ack made
	}
	a.unsure = ""
	log.Info("Reboot request acknowledged; rebooting")
	a.reboot(ctx, log)
}

// errNoKey: the request key could not be read.
var errNoKey = errors.New("reading the request key")

// verifySignature checks that the request, and the update riding on it,
// carry the manager's signature for this node (internal/signing), with
// the key read now (a key the manager made since the agent started is
// found).
func (a *Agent) verifySignature(ctx context.Context, node *corev1.Node, id string) error {
	secret, err := a.Client.CoreV1().Secrets(a.Namespace).Get(ctx, signing.SecretName, metav1.GetOptions{})
	if err != nil {
		a.Metrics.apiErrors.Inc()
		return fmt.Errorf("%w (Secret %s/%s): %w", errNoKey, a.Namespace, signing.SecretName, err)
	}
	key, err := signing.FromSecret(secret)
	if err != nil {
		return err
	}
	req := signing.Request{Node: a.NodeName, ID: id, Update: node.Annotations[v1alpha1.AnnotationUpdate]}
	return signing.Verify(key, req, node.Annotations[v1alpha1.AnnotationRebootSignature], a.now())
}

func (a *Agent) now() time.Time {
	if a.Clock == nil {
		return time.Now()
	}
	return a.Clock.Now()
}

// reboot runs the Rebooter for an acknowledged request.
func (a *Agent) reboot(ctx context.Context, log logr.Logger) {
	if err := a.Rebooter.Reboot(ctx); err != nil {
		a.Metrics.reboots.WithLabelValues("error").Inc()
		log.Error(err, "Reboot failed; the manager's reboot timeout will report it")
		return
	}
	a.Metrics.reboots.WithLabelValues("started").Inc()
}
