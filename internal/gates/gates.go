// Package gates decides whether maintenance may start now: maintenance windows and blocking pods.
package gates

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	// Time zones without relying on the image having /usr/share/zoneinfo.
	_ "time/tzdata"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
)

var weekdays = map[v1alpha1.Weekday]time.Weekday{
	"Sun": time.Sunday, "Mon": time.Monday, "Tue": time.Tuesday, "Wed": time.Wednesday,
	"Thu": time.Thursday, "Fri": time.Friday, "Sat": time.Saturday,
}

// InWindow reports whether now is inside one of the windows (always, when
// there are none) and, if not, when the next one opens.
func InWindow(windows []v1alpha1.MaintenanceWindow, now time.Time) (open bool, next time.Time, err error) {
	if len(windows) == 0 {
		return true, time.Time{}, nil
	}
	for i, w := range windows {
		o, n, err := inWindow(w, now)
		if err != nil {
			return false, time.Time{}, fmt.Errorf("maintenanceWindows[%d]: %w", i, err)
		}
		if o {
			return true, time.Time{}, nil
		}
		if next.IsZero() || n.Before(next) {
			next = n
		}
	}
	return false, next, nil
}

// Validate checks the windows without a clock.
func Validate(windows []v1alpha1.MaintenanceWindow) error {
	_, _, err := InWindow(windows, time.Now())
	return err
}

func inWindow(w v1alpha1.MaintenanceWindow, now time.Time) (bool, time.Time, error) {
	loc := time.UTC
	if w.TimeZone != "" {
		l, err := time.LoadLocation(w.TimeZone)
		if err != nil {
			return false, time.Time{}, fmt.Errorf("time zone %q: %w", w.TimeZone, err)
		}
		loc = l
	}
	sh, sm, err := clock(w.Start)
	if err != nil {
		return false, time.Time{}, fmt.Errorf("start: %w", err)
	}
	eh, em, err := clock(w.End)
	if err != nil {
		return false, time.Time{}, fmt.Errorf("end: %w", err)
	}
	days := map[time.Weekday]bool{}
	for _, d := range w.Days {
		wd, ok := weekdays[d]
		if !ok {
			return false, time.Time{}, fmt.Errorf("unknown day %q (Mon..Sun)", d)
		}
		days[wd] = true
	}
	t := now.In(loc)
	var next time.Time
	// Yesterday's window may run past midnight into today.
	for offset := -1; offset <= 7; offset++ {
		day := time.Date(t.Year(), t.Month(), t.Day()+offset, 0, 0, 0, 0, loc)
		if len(days) > 0 && !days[day.Weekday()] {
			continue
		}
		start := time.Date(day.Year(), day.Month(), day.Day(), sh, sm, 0, 0, loc)
		end := time.Date(day.Year(), day.Month(), day.Day(), eh, em, 0, 0, loc)
		if !end.After(start) {
			end = end.AddDate(0, 0, 1) // past midnight; equal start and end is a whole day
		}
		if !t.Before(start) && t.Before(end) {
			return true, time.Time{}, nil
		}
		if start.After(t) && (next.IsZero() || start.Before(next)) {
			next = start
		}
	}
	return false, next, nil
}

func clock(s string) (h, m int, err error) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		return 0, 0, fmt.Errorf("%q is not HH:MM", s)
	}
	return t.Hour(), t.Minute(), nil
}

// BlockingPod names the first running pod that keeps maintenance of its
// node from starting, and why: it carries nodecycle.io/do-not-disrupt=true,
// or it matches one of the selectors. "" when none does.
func BlockingPod(pods []corev1.Pod, selectors []metav1.LabelSelector) (pod, why string, err error) {
	sels := make([]labels.Selector, 0, len(selectors))
	for i := range selectors {
		s, err := metav1.LabelSelectorAsSelector(&selectors[i])
		if err != nil {
			return "", "", fmt.Errorf("blockingPodSelectors[%d]: %w", i, err)
		}
		sels = append(sels, s)
	}
	for _, p := range pods {
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		name := p.Namespace + "/" + p.Name
		if p.Annotations[v1alpha1.AnnotationDoNotDisrupt] == "true" {
			return name, v1alpha1.AnnotationDoNotDisrupt + "=true", nil
		}
		for _, s := range sels {
			if !s.Empty() && s.Matches(labels.Set(p.Labels)) {
				return name, "it matches the policy's blockingPodSelectors", nil
			}
		}
	}
	return "", "", nil
}
