package power

import (
	"encoding/hex"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// providerIDSchemes maps a provider to the scheme of Node.spec.providerID
// that names its machines.
var providerIDSchemes = map[string]string{
	"vsphere":    "vsphere://",
	"virtualbox": "virtualbox://",
	"libvirt":    "libvirt://",
}

// Resolve finds the machine behind node for the named provider, from what
// the node cannot write: first machines (the policy's table, node name to
// BMC address or VM), then spec.providerID, which is set when the Node is
// registered and cannot be changed afterwards. Annotations and
// status.nodeInfo (written by the kubelet, or by anyone who may patch
// Nodes) are never used: they would let a node choose which machine is
// powered off and where the credentials go. An error says everything that
// was tried.
func Resolve(node *corev1.Node, provider string, machines map[string]string) (Machine, error) {
	if m := machines[node.Name]; m != "" {
		return Machine{Candidates: uuidForms(m, provider), Source: "powerCycle.machines[" + node.Name + "]"}, nil
	}
	tried := []string{fmt.Sprintf("powerCycle.machines[%s]", node.Name)}
	if scheme, ok := providerIDSchemes[provider]; ok {
		if id := node.Spec.ProviderID; strings.HasPrefix(id, scheme) {
			v := strings.TrimPrefix(id, scheme)
			v = strings.TrimPrefix(v, "/") // vsphere:///uuid and libvirt:///uuid forms
			if v != "" {
				return Machine{Candidates: uuidForms(v, provider), Source: "spec.providerID " + id}, nil
			}
		}
		tried = append(tried, fmt.Sprintf("spec.providerID %q (want %s...)", node.Spec.ProviderID, scheme))
	}
	return Machine{}, fmt.Errorf("no %s machine found for node %s: tried %s", provider, node.Name, strings.Join(tried, ", "))
}

// uuidForms returns a UUID in lower case and, for platforms whose BIOS
// UUID the guest reads with the first three fields byte-swapped (vSphere,
// VirtualBox), the swapped form too. Anything else (a VM name, a BMC
// address) is returned as written.
func uuidForms(id, provider string) []string {
	lower := strings.ToLower(id)
	swapped, isUUID := swapUUID(lower)
	if !isUUID {
		return []string{id}
	}
	forms := []string{lower}
	if (provider == "vsphere" || provider == "virtualbox") && swapped != lower {
		forms = append(forms, swapped)
	}
	return forms
}

// swapUUID reverses the byte order of the first three fields of a UUID
// (SMBIOS 2.6+ little-endian encoding).
func swapUUID(id string) (string, bool) {
	parts := strings.Split(id, "-")
	if len(parts) != 5 || len(parts[0]) != 8 || len(parts[1]) != 4 || len(parts[2]) != 4 {
		return "", false
	}
	for i := 0; i < 3; i++ {
		b, err := hex.DecodeString(parts[i])
		if err != nil {
			return "", false
		}
		for l, r := 0, len(b)-1; l < r; l, r = l+1, r-1 {
			b[l], b[r] = b[r], b[l]
		}
		parts[i] = hex.EncodeToString(b)
	}
	return strings.Join(parts, "-"), true
}

// Exactly picks the one match among candidates; none or several is an error
// naming what was tried.
func Exactly[T any](m Machine, kind string, find func(id string) ([]T, error)) (T, string, error) {
	var zero T
	for _, id := range m.Candidates {
		found, err := find(id)
		if err != nil {
			return zero, "", err
		}
		switch len(found) {
		case 0:
			continue
		case 1:
			return found[0], id, nil
		default:
			return zero, "", fmt.Errorf("%d %ss match %s; refusing to guess", len(found), kind, id)
		}
	}
	return zero, "", fmt.Errorf("no %s matches %s", kind, m)
}
