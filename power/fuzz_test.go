package power

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// FuzzResolve: the machine found for a node depends only on the policy's
// table and spec.providerID, never on what the node can write (its
// annotations, its system UUID); it is never empty. Seeds in
// testdata/fuzz/FuzzResolve.
func FuzzResolve(f *testing.F) {
	f.Add("vsphere", "vsphere://4216A8E3-1B2C-3D4E-5F60-718293A4B5C6", "", "https://attacker", "0F9B5E4A-0000-4000-8000-000000000001")
	f.Add("ipmi", "", "10.0.0.5:623", "10.6.6.6", "")
	f.Add("libvirt", "libvirt:///", "", "vm", "x")
	f.Add("redfish", "redfish://x", "https://bmc-1", "", "")
	f.Fuzz(func(t *testing.T, provider, providerID, tableEntry, annotation, systemUUID string) {
		node := func(ann, uuid string) *corev1.Node {
			return &corev1.Node{
				ObjectMeta: metav1.ObjectMeta{Name: "n", Annotations: map[string]string{"nodecycle.io/bmc-address": ann, "nodecycle.io/machine-name": ann}},
				Spec:       corev1.NodeSpec{ProviderID: providerID},
				Status:     corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{SystemUUID: uuid}},
			}
		}
		table := map[string]string{"n": tableEntry}
		m, err := Resolve(node(annotation, systemUUID), provider, table)
		other, otherErr := Resolve(node("forged-"+annotation, "forged-"+systemUUID), provider, table)
		if !reflect.DeepEqual(m, other) || (err == nil) != (otherErr == nil) {
			t.Fatalf("what the node wrote changed the machine: %+v (%v) vs %+v (%v)", m, err, other, otherErr)
		}
		if err == nil && (len(m.Candidates) == 0 || m.Candidates[0] == "") {
			t.Fatalf("empty machine %+v", m)
		}
	})
}
