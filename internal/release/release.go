// Package release makes nodecycle's clusterctl addon provider release:
// addon-components.yaml (config/release rendered, with the version) and
// metadata.yaml (clusterctl's Metadata: which release series speaks which
// Cluster API contract).
package release

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"

	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
)

// Placeholder is the text config/release writes where the version goes.
const Placeholder = "RELEASE_VERSION"

// Render returns the components and the metadata of release version
// (vMAJOR.MINOR.PATCH) from config/release rendered by kustomize.
func Render(version string, kustomized []byte) (components, metadata []byte, err error) {
	major, minor, err := parse(version)
	if err != nil {
		return nil, nil, err
	}
	if !bytes.Contains(kustomized, []byte(Placeholder)) {
		return nil, nil, fmt.Errorf("the components name no %s: is this config/release rendered?", Placeholder)
	}
	components = bytes.ReplaceAll(kustomized, []byte(Placeholder), []byte(version))
	var b strings.Builder
	b.WriteString("# clusterctl's metadata of the nodecycle addon provider: each release\n# series and the Cluster API contract it speaks.\n")
	b.WriteString("apiVersion: clusterctl.cluster.x-k8s.io/v1alpha3\nkind: Metadata\nreleaseSeries:\n")
	// Every series of this major version so far speaks the current contract.
	for m := 0; m <= minor; m++ {
		if major == 0 && m == 0 {
			continue // the first release is v0.1
		}
		fmt.Fprintf(&b, "- major: %d\n  minor: %d\n  contract: %s\n", major, m, clusterv1.GroupVersion.Version)
	}
	return components, []byte(b.String()), nil
}

func parse(version string) (major, minor int, err error) {
	parts := strings.Split(strings.TrimPrefix(version, "v"), ".")
	if !strings.HasPrefix(version, "v") || len(parts) != 3 {
		return 0, 0, fmt.Errorf("release version %q: want vMAJOR.MINOR.PATCH", version)
	}
	var nums [3]int
	for i, p := range parts {
		if nums[i], err = strconv.Atoi(p); err != nil || nums[i] < 0 {
			return 0, 0, fmt.Errorf("release version %q: want vMAJOR.MINOR.PATCH", version)
		}
	}
	if nums[0] == 0 && nums[1] == 0 {
		return 0, 0, fmt.Errorf("release version %q: the first release series is v0.1", version)
	}
	return nums[0], nums[1], nil
}
