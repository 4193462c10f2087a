package power

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// H5: the machine comes from the policy's table or spec.providerID, never
// from what the node can write: its annotations and status.nodeInfo.
func TestResolve(t *testing.T) {
	node := func(providerID string, ann map[string]string, systemUUID string) *corev1.Node {
		return &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: "worker-1", Annotations: ann},
			Spec:       corev1.NodeSpec{ProviderID: providerID},
			Status:     corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{SystemUUID: systemUUID}},
		}
	}
	// What a kubelet or anyone with nodes/patch could write.
	forged := map[string]string{"nodecycle.io/bmc-address": "https://attacker.example", "nodecycle.io/machine-name": "database-1"}
	table := map[string]string{"worker-1": "10.0.0.5:623", "worker-2": "10.0.0.6:623"}
	cases := []struct {
		name, provider string
		node           *corev1.Node
		machines       map[string]string
		want           []string
		wantErr        string
	}{
		{"vsphere providerID, raw and swapped", "vsphere", node("vsphere://4216A8E3-1B2C-3D4E-5F60-718293A4B5C6", forged, ""), nil,
			[]string{"4216a8e3-1b2c-3d4e-5f60-718293a4b5c6", "e3a81642-2c1b-4e3d-5f60-718293a4b5c6"}, ""},
		{"libvirt providerID triple slash", "libvirt", node("libvirt:///6695eb01-f6a4-8304-79aa-97f2502e193f", nil, ""), nil,
			[]string{"6695eb01-f6a4-8304-79aa-97f2502e193f"}, ""},
		{"the policy's table first", "virtualbox", node("virtualbox://0f9b5e4a-0000-4000-8000-000000000001", forged, ""),
			map[string]string{"worker-1": "Worker-1"}, []string{"Worker-1"}, ""},
		{"ipmi from the table, whatever the annotations say", "ipmi", node("", forged, "x"), table, []string{"10.0.0.5:623"}, ""},
		{"ipmi never from an annotation", "ipmi", node("", forged, "0f9b5e4a-0000-4000-8000-000000000001"), nil, nil,
			"no ipmi machine found for node worker-1: tried powerCycle.machines[worker-1]"},
		{"never from the name annotation or the system UUID", "vsphere", node("aws:///us-east-1a/i-0123", forged, "0F9B5E4A-0000-4000-8000-000000000001"), nil, nil,
			`tried powerCycle.machines[worker-1], spec.providerID "aws:///us-east-1a/i-0123" (want vsphere://...)`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Resolve(tc.node, tc.provider, tc.machines)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(m.Candidates, tc.want) {
				t.Fatalf("candidates %v, want %v", m.Candidates, tc.want)
			}
		})
	}
}

func TestExactly(t *testing.T) {
	m := Machine{Candidates: []string{"a", "b"}, Source: "test"}
	got, id, err := Exactly(m, "VM", func(id string) ([]string, error) {
		if id == "b" {
			return []string{"vm-b"}, nil
		}
		return nil, nil
	})
	if err != nil || got != "vm-b" || id != "b" {
		t.Fatalf("got %q %q %v", got, id, err)
	}
	_, _, err = Exactly(m, "VM", func(string) ([]string, error) { return []string{"x", "y"}, nil })
	if err == nil || !strings.Contains(err.Error(), "2 VMs match a; refusing to guess") {
		t.Fatalf("ambiguity: %v", err)
	}
	_, _, err = Exactly(m, "VM", func(string) ([]string, error) { return nil, nil })
	if err == nil || !strings.Contains(err.Error(), "no VM matches a or b (from test)") {
		t.Fatalf("no match: %v", err)
	}
	boom := errors.New("boom")
	if _, _, err = Exactly(m, "VM", func(string) ([]string, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("lookup error: %v", err)
	}
}

func TestRegistry(t *testing.T) {
	r := &Registry{}
	r.Register("b", func(Settings) (Provider, error) { return nil, errors.New("bad settings") })
	r.Register("a", func(Settings) (Provider, error) { return nil, nil })
	if _, err := r.New("c", Settings{}); !errors.Is(err, ErrUnknownProvider) || !strings.Contains(err.Error(), "known: a, b") {
		t.Fatalf("unknown provider: %v", err)
	}
	if _, err := r.New("b", Settings{}); err == nil || !strings.Contains(err.Error(), "provider b: bad settings") {
		t.Fatalf("factory error: %v", err)
	}
}

func BenchmarkResolve(b *testing.B) {
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "worker-1"},
		Spec:       corev1.NodeSpec{ProviderID: "vsphere://4216A8E3-1B2C-3D4E-5F60-718293A4B5C6"},
	}
	machines := map[string]string{"worker-1": "10.0.0.5"}
	for b.Loop() {
		for _, p := range []string{"vsphere", "ipmi"} {
			if _, err := Resolve(node, p, machines); err != nil {
				b.Fatal(err)
			}
		}
	}
}
