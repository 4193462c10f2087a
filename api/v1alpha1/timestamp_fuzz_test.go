package v1alpha1

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/kube-openapi/pkg/validation/strfmt"
)

// timestampPattern is the pattern the shipped CRD gives the NodeCycle's
// status timestamps.
func timestampPattern(t testing.TB) *regexp.Regexp {
	crd, err := os.ReadFile("../../config/crd/bases/nodecycle.io_nodecycles.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s+pattern: (\^\[0-9\]\{4\}-.*)$`).FindSubmatch(crd)
	if m == nil {
		t.Fatal("no timestamp pattern in the CRD")
	}
	return regexp.MustCompile(string(m[1]))
}

// FuzzStatusTimestamp: every value the API server lets into a status
// timestamp (the CRD's pattern and format date-time) decodes as the
// manager's MicroTime, so no hand-written status can make the NodeCycle
// list undecodable (N4).
func FuzzStatusTimestamp(f *testing.F) {
	pattern := timestampPattern(f)
	for _, s := range []string{"2025-01-01T00:00:00Z", "2025-01-01T00:00:00.000000Z", "2025-02-31T00:00:00.000000Z",
		"2025-01-01T24:00:00.000000+01:00", "9999-12-31T23:59:60.999999-23:59", "2025-01-01T00:00:00.123456+14:00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !pattern.MatchString(s) || !strfmt.IsDateTime(s) || strings.ContainsAny(s, "\"\\") {
			return // refused by the API server
		}
		raw, _ := json.Marshal(s)
		var mt metav1.MicroTime
		if err := json.Unmarshal(raw, &mt); err != nil {
			t.Fatalf("%q passes the CRD but does not decode: %v", s, err)
		}
	})
}
