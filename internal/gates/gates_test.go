package gates

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
)

func TestInWindow(t *testing.T) {
	// Thursday 2026-11-26.
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	nightly := v1alpha1.MaintenanceWindow{Start: "22:00", End: "04:00"}
	weekend := v1alpha1.MaintenanceWindow{Days: []v1alpha1.Weekday{"Sat", "Sun"}, Start: "09:00", End: "17:00", TimeZone: "Europe/Berlin"}
	cases := []struct {
		name     string
		windows  []v1alpha1.MaintenanceWindow
		now      string
		open     bool
		nextOpen string
	}{
		{"no windows: always", nil, "2026-11-26T12:00:00Z", true, ""},
		{"inside a nightly window before midnight", []v1alpha1.MaintenanceWindow{nightly}, "2026-11-26T23:00:00Z", true, ""},
		{"inside it after midnight", []v1alpha1.MaintenanceWindow{nightly}, "2026-11-27T03:59:00Z", true, ""},
		{"closed at its end", []v1alpha1.MaintenanceWindow{nightly}, "2026-11-27T04:00:00Z", false, "2026-11-27T22:00:00Z"},
		{"before it opens", []v1alpha1.MaintenanceWindow{nightly}, "2026-11-26T12:00:00Z", false, "2026-11-26T22:00:00Z"},
		{"weekend in Berlin, Thursday", []v1alpha1.MaintenanceWindow{weekend}, "2026-11-26T12:00:00Z", false, "2026-11-28T08:00:00Z"},
		{"weekend in Berlin, Saturday 09:30 local", []v1alpha1.MaintenanceWindow{weekend}, "2026-11-28T08:30:00Z", true, ""},
		{"earliest of two", []v1alpha1.MaintenanceWindow{weekend, nightly}, "2026-11-26T12:00:00Z", false, "2026-11-26T22:00:00Z"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			open, next, err := InWindow(tc.windows, at(tc.now))
			if err != nil {
				t.Fatal(err)
			}
			if open != tc.open {
				t.Fatalf("open = %t, want %t", open, tc.open)
			}
			if tc.nextOpen != "" && !next.Equal(at(tc.nextOpen)) {
				t.Fatalf("next = %s, want %s", next.UTC(), tc.nextOpen)
			}
		})
	}
}

func TestInvalidWindows(t *testing.T) {
	for _, w := range []v1alpha1.MaintenanceWindow{
		{Start: "25:00", End: "04:00"},
		{Start: "22:00", End: "4am"},
		{Start: "22:00", End: "04:00", TimeZone: "Mars/Olympus"},
		{Start: "22:00", End: "04:00", Days: []v1alpha1.Weekday{"Funday"}},
	} {
		if err := Validate([]v1alpha1.MaintenanceWindow{w}); err == nil || !strings.Contains(err.Error(), "maintenanceWindows[0]") {
			t.Errorf("%+v: got %v, want an error naming the window", w, err)
		}
	}
}

func TestBlockingPod(t *testing.T) {
	pod := func(name, phase string, lbls map[string]string) corev1.Pod {
		return corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "db", Name: name, Labels: lbls}, Status: corev1.PodStatus{Phase: corev1.PodPhase(phase)}}
	}
	sel := []metav1.LabelSelector{{MatchLabels: map[string]string{"backup": "running"}}}
	pods := []corev1.Pod{
		pod("done", "Succeeded", map[string]string{"backup": "running"}),
		pod("web", "Running", map[string]string{"app": "web"}),
		pod("backup-1", "Running", map[string]string{"backup": "running"}),
	}
	if got, why, err := BlockingPod(pods, sel); err != nil || got != "db/backup-1" || !strings.Contains(why, "blockingPodSelectors") {
		t.Fatalf("got %q %q %v", got, why, err)
	}
	if got, _, _ := BlockingPod(pods[:2], sel); got != "" {
		t.Fatalf("finished and unmatched pods block: %q", got)
	}
	// Karpenter's convention: a pod says itself that its node must wait.
	quiet := pod("etl", "Running", nil)
	quiet.Annotations = map[string]string{v1alpha1.AnnotationDoNotDisrupt: "true"}
	if got, why, _ := BlockingPod(append(pods[:2:2], quiet), nil); got != "db/etl" || why != "nodecycle.io/do-not-disrupt=true" {
		t.Fatalf("a do-not-disrupt pod: got %q %q", got, why)
	}
	quiet.Annotations[v1alpha1.AnnotationDoNotDisrupt] = "false"
	if got, _, _ := BlockingPod([]corev1.Pod{quiet}, nil); got != "" {
		t.Fatalf("do-not-disrupt=false blocks: %q", got)
	}
	bad := []metav1.LabelSelector{{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "a", Operator: "Sometimes"}}}}
	if _, _, err := BlockingPod(pods, bad); err == nil {
		t.Fatal("an invalid selector must be an error")
	}
}
