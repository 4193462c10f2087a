package v1alpha1

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
)

// H1: one stored policy whose duration does not parse (accepted before the
// CRD bounded durations) must not make the list of all policies fail to
// decode, which is what kept the manager's cache from ever syncing.
func TestAListWithAnUndecodableDurationDecodes(t *testing.T) {
	s := runtime.NewScheme()
	if err := AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	list := `{"apiVersion":"nodecycle.io/v1alpha1","kind":"NodeCyclePolicyList","items":[
	  {"apiVersion":"nodecycle.io/v1alpha1","kind":"NodeCyclePolicy","metadata":{"name":"bad"},"spec":{"drainTimeout":"9999999999h","rebootTimeout":42}},
	  {"apiVersion":"nodecycle.io/v1alpha1","kind":"NodeCyclePolicy","metadata":{"name":"good"},"spec":{"drainTimeout":"90s"}}]}`
	obj, _, err := serializer.NewCodecFactory(s).UniversalDeserializer().Decode([]byte(list), nil, nil)
	if err != nil {
		t.Fatalf("one bad policy made the list undecodable: %v", err)
	}
	items := obj.(*NodeCyclePolicyList).Items
	if len(items) != 2 {
		t.Fatalf("%d policies decoded, want 2", len(items))
	}
	err = items[0].Spec.DurationErr()
	if err == nil || !strings.Contains(err.Error(), `spec.drainTimeout: "9999999999h" is not a duration`) || !strings.Contains(err.Error(), `spec.rebootTimeout: 42 is not a duration`) {
		t.Fatalf("DurationErr = %v, want both bad fields named", err)
	}
	if err := items[1].Spec.DurationErr(); err != nil || items[1].Spec.DrainTimeout.Duration != 90*time.Second {
		t.Fatalf("good policy: %v, %v", err, items[1].Spec.DrainTimeout)
	}
	// Written back as stored, so an update never rewrites what it did not read.
	b, _ := json.Marshal(items[0].Spec.DrainTimeout)
	if string(b) != `"9999999999h"` {
		t.Fatalf("marshalled as %s", b)
	}
}
