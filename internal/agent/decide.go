package agent

import (
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
)

// Decision is what the agent does about its Node's reboot request.
type Decision int

const (
	// Ignore: no request, or one already acknowledged (carried out before,
	// perhaps by an earlier run of the agent): never twice for one id.
	Ignore Decision = iota
	// Refuse: a request on a node that is not cordoned, or whose cordon is
	// not the one nodecycle made for it. nodecycle cordons (or finds
	// cordoned) and drains a node before it asks; a request made under its
	// own cordon names that cordon ("namespace/name/uid", the cordon being
	// nodecycle.io/cordoned-by=namespace/name), and is refused once the
	// cordon is gone or someone else's (an admin who took the node over by
	// removing nodecycle's mark). Carrying it out would take down pods that
	// were never evicted, or a node someone else is working on.
	Refuse
	// Reboot: acknowledge, then reboot.
	Reboot
)

// Decide says what to do about node's reboot request, and its id.
func Decide(node *corev1.Node) (string, Decision) {
	id := node.Annotations[v1alpha1.AnnotationRebootRequest]
	switch {
	case id == "" || node.Annotations[v1alpha1.AnnotationRebootAck] == id:
		return id, Ignore
	case !node.Spec.Unschedulable || !CordonMatches(node, id):
		return id, Refuse
	}
	return id, Reboot
}

// CordonMatches says whether a reboot request id is one that may be
// carried out under the node's cordon: a request that names nodecycle's
// cordon ("namespace/name/uid") only while nodecycle.io/cordoned-by is
// that namespace/name; a request without one (nodecycle found the node
// cordoned by someone else) under any cordon.
func CordonMatches(node *corev1.Node, id string) bool {
	i := strings.LastIndex(id, "/")
	if i < 0 {
		return true
	}
	owner, cordoned := node.Annotations[v1alpha1.AnnotationCordonedBy]
	return cordoned && owner == id[:i]
}

// olderThan reports whether resourceVersion rv is older than ref. The API
// server's resourceVersions are etcd revisions; anything that does not parse
// as one is never called older.
func olderThan(rv, ref string) bool {
	a, errA := strconv.ParseUint(rv, 10, 64)
	b, errB := strconv.ParseUint(ref, 10, 64)
	return errA == nil && errB == nil && a < b
}
