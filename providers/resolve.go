package providers

import (
	"encoding/hex"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Annotations on a Node for what a providerID cannot carry.
const (
	// AnnotationBMCAddress is the BMC of the node's machine (host or
	// host:port) for IPMI and Redfish.
	AnnotationBMCAddress = "nodecycle.io/bmc-address"
	// AnnotationMachineName is the VM's name for vSphere, libvirt and VirtualBox.
	AnnotationMachineName = "nodecycle.io/machine-name"
)

// providerIDSchemes maps a provider to the scheme of Node.spec.providerID
// that names its machines.
var providerIDSchemes = map[string]string{
	"vsphere":    "vsphere://",
	"virtualbox": "virtualbox://",
	"libvirt":    "libvirt://",
}

// uuidProviders can find a machine by the node's SMBIOS system UUID.
var uuidProviders = map[string]bool{"vsphere": true, "virtualbox": true, "libvirt": true}

// Resolve finds the machine behind node for the named provider, in this
// order: spec.providerID, the node's annotations, status.nodeInfo.systemUUID
// (raw and byte-swapped where the platform stores it swapped). An error says
// everything that was tried.
func Resolve(node *corev1.Node, provider string) (Machine, error) {
	var tried []string
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
	switch provider {
	case "ipmi", "redfish":
		if a := node.Annotations[AnnotationBMCAddress]; a != "" {
			return Machine{Candidates: []string{a}, Source: "annotation " + AnnotationBMCAddress}, nil
		}
		tried = append(tried, "annotation "+AnnotationBMCAddress)
	default:
		if n := node.Annotations[AnnotationMachineName]; n != "" {
			return Machine{Candidates: []string{n}, Source: "annotation " + AnnotationMachineName}, nil
		}
		tried = append(tried, "annotation "+AnnotationMachineName)
	}
	if uuidProviders[provider] {
		if u := node.Status.NodeInfo.SystemUUID; u != "" {
			return Machine{Candidates: uuidForms(u, provider), Source: "status.nodeInfo.systemUUID"}, nil
		}
		tried = append(tried, "status.nodeInfo.systemUUID")
	}
	return Machine{}, fmt.Errorf("no %s machine found for node %s: tried %s", provider, node.Name, strings.Join(tried, ", "))
}

// uuidForms returns the UUID as given and, for platforms whose BIOS UUID the
// guest reads with the first three fields byte-swapped (vSphere,
// VirtualBox), the swapped form too.
func uuidForms(id, provider string) []string {
	id = strings.ToLower(id)
	forms := []string{id}
	if provider == "vsphere" || provider == "virtualbox" {
		if s, ok := swapUUID(id); ok && s != id {
			forms = append(forms, s)
		}
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
