//go:build e2e

package capi

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// A timeline is what the watches of both clusters saw in one scenario,
// from its start: printed after the tests (make e2e-capi, make bench-capi).
type timeline struct {
	scenario string
	start    time.Time
	steps    []step
	notes    []string
}

type step struct {
	what string
	at   time.Time
}

var (
	timelinesMu sync.Mutex
	timelines   []*timeline
)

func newTimeline(scenario string, start time.Time) *timeline {
	tl := &timeline{scenario: scenario, start: start}
	timelinesMu.Lock()
	timelines = append(timelines, tl)
	timelinesMu.Unlock()
	return tl
}

// add records a step; a zero time (never seen) is recorded as missing.
func (tl *timeline) add(what string, at time.Time) { tl.steps = append(tl.steps, step{what, at}) }

// note adds a line under the table.
func (tl *timeline) note(format string, args ...any) {
	tl.notes = append(tl.notes, fmt.Sprintf(format, args...))
}

func (tl *timeline) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n%s (from %s)\n", tl.scenario, tl.start.Format("15:04:05.000"))
	steps := append([]step(nil), tl.steps...)
	sort.SliceStable(steps, func(i, j int) bool {
		return !steps[i].at.IsZero() && (steps[j].at.IsZero() || steps[i].at.Before(steps[j].at))
	})
	fmt.Fprintf(&b, "  %-58s %10s %10s\n", "step", "at", "after last")
	last := tl.start
	for _, s := range steps {
		if s.at.IsZero() {
			fmt.Fprintf(&b, "  %-58s %10s\n", s.what, "never")
			continue
		}
		fmt.Fprintf(&b, "  %-58s %9.1fs %9.1fs\n", s.what, s.at.Sub(tl.start).Seconds(), s.at.Sub(last).Seconds())
		last = s.at
	}
	for _, n := range tl.notes {
		fmt.Fprintf(&b, "  %s\n", n)
	}
	return b.String()
}

// printTimelines writes every scenario's timeline.
func printTimelines() {
	timelinesMu.Lock()
	defer timelinesMu.Unlock()
	if len(timelines) == 0 {
		return
	}
	fmt.Println("\nTimelines (seconds from each scenario's start; Node watch of the workload cluster, Machine watch and NodeCycles of the management cluster)")
	for _, tl := range timelines {
		fmt.Print(tl)
	}
}
