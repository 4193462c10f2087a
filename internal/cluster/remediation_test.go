package cluster

import (
	"context"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
)

// A NodeCycle lifts the skip-remediation it put on its Machine, and never
// one put by someone else (another NodeCycle, an admin): checked here on
// its own, without the Machine reconciler's clean-up that would mask it.
func TestResumeRemediationLiftsOnlyItsOwn(t *testing.T) {
	s := runtime.NewScheme()
	_ = clusterv1.AddToScheme(s)
	for _, tc := range []struct {
		name, by   string
		wantLifted bool
	}{
		{"its own", "ns/nc-1", true},
		{"another NodeCycle's", "ns/nc-0", false},
		{"an admin's", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ann := map[string]string{clusterv1.MachineSkipRemediationAnnotation: ""}
			if tc.by != "" {
				ann[v1alpha1.AnnotationSkipRemediationBy] = tc.by
			}
			m := &clusterv1.Machine{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "m-1", Annotations: ann}}
			c := fake.NewClientBuilder().WithScheme(s).WithObjects(m).Build()
			target := machineTarget{mgmt: c, namespace: "ns", machine: "m-1"}
			if err := target.ResumeRemediation(context.Background(), "ns/nc-1"); err != nil {
				t.Fatal(err)
			}
			got := &clusterv1.Machine{}
			if err := c.Get(context.Background(), client.ObjectKey{Namespace: "ns", Name: "m-1"}, got); err != nil {
				t.Fatal(err)
			}
			if _, skipping := got.Annotations[clusterv1.MachineSkipRemediationAnnotation]; skipping == tc.wantLifted {
				t.Fatalf("skip-remediation present %t, want lifted %t", skipping, tc.wantLifted)
			}
		})
	}
}

// clusterctl's block-move goes on with the skip-remediation and comes off
// with it; one someone else put on stays.
func TestBlockMoveDuringTheOperation(t *testing.T) {
	s := runtime.NewScheme()
	_ = clusterv1.AddToScheme(s)
	for _, tc := range []struct {
		name    string
		before  map[string]string
		wantOff bool
	}{
		{name: "nodecycle's", before: nil, wantOff: true},
		{name: "someone else's", before: map[string]string{v1alpha1.AnnotationBlockMove: ""}, wantOff: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &clusterv1.Machine{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "m-1", Annotations: tc.before}}
			c := fake.NewClientBuilder().WithScheme(s).WithObjects(m).Build()
			target := machineTarget{mgmt: c, namespace: "ns", machine: "m-1"}
			get := func() map[string]string {
				got := &clusterv1.Machine{}
				if err := c.Get(context.Background(), client.ObjectKey{Namespace: "ns", Name: "m-1"}, got); err != nil {
					t.Fatal(err)
				}
				return got.Annotations
			}
			if _, err := target.PauseRemediation(context.Background(), "ns/nc-1"); err != nil {
				t.Fatal(err)
			}
			if _, blocked := get()[v1alpha1.AnnotationBlockMove]; !blocked {
				t.Fatal("no block-move during the operation")
			}
			if err := target.ResumeRemediation(context.Background(), "ns/nc-1"); err != nil {
				t.Fatal(err)
			}
			a := get()
			if _, blocked := a[v1alpha1.AnnotationBlockMove]; blocked == tc.wantOff {
				t.Fatalf("block-move present %t after the operation, want removed %t", blocked, tc.wantOff)
			}
			if _, skipping := a[clusterv1.MachineSkipRemediationAnnotation]; skipping {
				t.Fatal("skip-remediation stayed")
			}
		})
	}
}
