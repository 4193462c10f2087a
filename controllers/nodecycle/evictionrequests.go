package nodecycle

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	lifecyclev1alpha1 "github.com/nodecycle/nodecycle/internal/apis/lifecycle/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/drain"
)

// A drain goes through EvictionRequests (lifecycle.k8s.io/v1alpha1) where
// the node's cluster serves them and drain.evictionRequests allows it
// (docs/design.md, "Cooperative drains"). The choice is made once per
// NodeCycle, at its first drain step, and kept in the finalizer
// nodecycle.io/withdraw-evictions: a restarted manager drains the same way,
// and a NodeCycle deleted mid-drain withdraws its requests first.

// servesTTL is how long what a cluster's discovery said is believed.
const servesTTL = time.Minute

type served struct {
	ok bool
	at time.Time
}

// viaRequests says whether the NodeCycle's drain goes through
// EvictionRequests; refusal, when not empty, is why the drain cannot run
// at all (Always on a cluster without them).
func (r *Reconciler) viaRequests(s *scope) (via bool, refusal string, err error) {
	if controllerutil.ContainsFinalizer(s.nc, v1alpha1.FinalizerWithdrawEvictions) {
		return true, "", nil // chosen by an earlier step
	}
	mode := s.nc.Spec.Drain.EvictionRequests
	if mode == v1alpha1.EvictionRequestsNever {
		return false, "", nil
	}
	ok, err := r.servesRequests(s)
	if err != nil {
		return false, "", err
	}
	if !ok && mode == v1alpha1.EvictionRequestsAlways {
		return false, fmt.Sprintf("drain.evictionRequests is Always, but the node's cluster does not serve %s EvictionRequests (feature gate EvictionRequestAPI and --runtime-config=%s=true on its API server)",
			lifecyclev1alpha1.GroupVersion, lifecyclev1alpha1.GroupVersion), nil
	}
	return ok, "", nil
}

// servesRequests asks the node's cluster's discovery, at most once per
// servesTTL per cluster, whether it serves EvictionRequests and
// Evictions. A cluster reached without a REST config (tests) does not.
func (r *Reconciler) servesRequests(s *scope) (bool, error) {
	cfg := s.workload().Config
	if cfg == nil {
		return false, nil
	}
	key := s.nc.Namespace + "/" + s.nc.Spec.ClusterName
	if v, ok := r.serves.Load(key); ok && s.now.Sub(v.(served).at) < servesTTL {
		return v.(served).ok, nil
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return false, err
	}
	ok, err := servesLifecycle(dc)
	if err != nil {
		return false, fmt.Errorf("asking the cluster whether it serves %s: %w", lifecyclev1alpha1.GroupVersion, err)
	}
	r.serves.Store(key, served{ok: ok, at: s.now})
	return ok, nil
}

// servesLifecycle reports whether discovery lists both evictionrequests
// and evictions in lifecycle.k8s.io/v1alpha1.
func servesLifecycle(dc discovery.DiscoveryInterface) (bool, error) {
	groups, err := dc.ServerGroups()
	if err != nil {
		return false, err
	}
	found := false
	for _, g := range groups.Groups {
		for _, v := range g.Versions {
			found = found || v.GroupVersion == lifecyclev1alpha1.GroupVersion.String()
		}
	}
	if !found {
		return false, nil
	}
	list, err := dc.ServerResourcesForGroupVersion(lifecyclev1alpha1.GroupVersion.String())
	if err != nil {
		return false, err
	}
	var requests, evictions bool
	for _, res := range list.APIResources {
		requests = requests || res.Name == lifecyclev1alpha1.ResourceEvictionRequests
		evictions = evictions || res.Name == lifecyclev1alpha1.ResourceEvictions
	}
	return requests && evictions, nil
}

// tellRequests tells, once each, what a drain step through
// EvictionRequests saw: a request written for a pod, and a pod's eviction
// responder at work (told again when another takes over).
func (r *Reconciler) tellRequests(s *scope, res drain.Result) {
	for _, p := range res.Waiting {
		ns, name, _ := strings.Cut(p.Pod, "/")
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
		switch {
		case p.Reason == drain.ReasonRequested:
			s.eventAbout(pod, corev1.EventTypeNormal, v1alpha1.ReasonEvictionRequested, "Requested the eviction of pod %s (EvictionRequest, requester %s)", p.Pod, drain.Requester)
		case p.Responder != nil:
			key := s.nc.Namespace + "/" + s.nc.Name + "/" + p.Pod
			if last, ok := r.responders.Load(key); ok && last.(string) == p.Responder.Name {
				continue
			}
			r.responders.Store(key, p.Responder.Name)
			s.eventAbout(pod, corev1.EventTypeNormal, v1alpha1.ReasonEvictionResponder, "Pod %s: %s", p.Pod, p.Responder.Describe(s.now))
		}
	}
}

// forgetResponders drops what tellRequests remembers of the NodeCycle.
func (r *Reconciler) forgetResponders(s *scope) {
	prefix := s.nc.Namespace + "/" + s.nc.Name + "/"
	r.responders.Range(func(k, _ any) bool {
		if strings.HasPrefix(k.(string), prefix) {
			r.responders.Delete(k)
		}
		return true
	})
}

// withdraw sets intent Withdrawn on the node's open EvictionRequests of
// nodecycle's and tells it.
func (r *Reconciler) withdraw(ctx context.Context, s *scope, why string) error {
	r.forgetResponders(s)
	if s.target == nil {
		return nil
	}
	d := drain.Drainer{Reader: s.workload().Reader, Writer: s.workload().Client}
	pods, err := d.Withdraw(ctx, s.nc.Spec.NodeName)
	if err != nil {
		return err
	}
	if len(pods) > 0 {
		s.event(corev1.EventTypeNormal, v1alpha1.ReasonEvictionsWithdrawn, "Withdrew the EvictionRequests of %d pods (%s): %s", len(pods), why, strings.Join(pods, ", "))
	}
	return nil
}

// withdrawOnLeaving withdraws the open requests of a drain that ended in
// this reconcile without its pods gone (a timeout, a refusal, the node
// deleted). A drained node's requests are left to the cluster: their pods
// are gone, and the controller may not have said so yet.
func (r *Reconciler) withdrawOnLeaving(ctx context.Context, s *scope) error {
	st := s.nc.Status
	if !controllerutil.ContainsFinalizer(s.nc, v1alpha1.FinalizerWithdrawEvictions) || st.Phase == v1alpha1.PhaseDraining ||
		(st.Outcome != v1alpha1.PhaseFailed && st.Phase != v1alpha1.PhaseFailed) {
		r.forgetResponders(s)
		return nil
	}
	why := "the drain ended"
	if st.Reason != "" {
		why += ": " + string(st.Reason)
	}
	return r.withdraw(ctx, s, why)
}
