package framework

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/watch"
)

// Percentile returns the p-th percentile (0..1) of d, 0 for none.
func Percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(float64(len(s)-1)*p)]
}

// Millis is d in milliseconds, for benchmark metrics.
func Millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// ProcStatusKiB reads a kB field (VmRSS:, VmHWM:) of /proc/<pid>/status.
func ProcStatusKiB(pid int, key string) (int, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, key) {
			return strconv.Atoi(strings.Fields(line)[1])
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", key, pid)
}

// ProcCPU is the user+system time of a process, from /proc/<pid>/stat (in
// clock ticks of 10 ms).
func ProcCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(data)
	f := strings.Fields(s[strings.LastIndex(s, ")")+2:])
	u, _ := strconv.Atoi(f[11])
	st, _ := strconv.Atoi(f[12])
	return time.Duration(u+st) * 10 * time.Millisecond, nil
}

// Roll is what a watch of the nodes saw during a rolling reboot.
type Roll struct {
	// FirstCordon is from start to the first node cordoned.
	FirstCordon time.Duration
	// Dead are the times from a node uncordoned to the next cordoned.
	Dead []time.Duration
	// Total is from start to the last node uncordoned.
	Total time.Duration
}

// WatchRoll follows node updates on w until count nodes were cordoned and
// uncordoned again.
func WatchRoll(w watch.Interface, count int, start time.Time, timeout time.Duration) (Roll, error) {
	var r Roll
	cordoned := map[string]bool{}
	var lastUncordon time.Time
	deadline := time.After(timeout)
	for done := 0; done < count; {
		select {
		case <-deadline:
			return r, fmt.Errorf("roll did not finish in %s: %d of %d nodes done", timeout, done, count)
		case ev, ok := <-w.ResultChan():
			if !ok {
				return r, fmt.Errorf("watch closed: %d of %d nodes done", done, count)
			}
			n, isNode := ev.Object.(*corev1.Node)
			if !isNode || ev.Type != watch.Modified {
				continue
			}
			now := time.Now()
			switch was := cordoned[n.Name]; {
			case n.Spec.Unschedulable && !was:
				if r.FirstCordon == 0 {
					r.FirstCordon = now.Sub(start)
				}
				if !lastUncordon.IsZero() {
					r.Dead = append(r.Dead, now.Sub(lastUncordon))
				}
			case !n.Spec.Unschedulable && was:
				lastUncordon = now
				done++
			}
			cordoned[n.Name] = n.Spec.Unschedulable
		}
	}
	r.Total = time.Since(start)
	return r, nil
}

// WatchNode follows w until Node name satisfies ok, and says when it was
// seen so.
func WatchNode(w watch.Interface, name string, ok func(*corev1.Node) bool, timeout time.Duration) (time.Time, error) {
	deadline := time.After(timeout)
	for {
		select {
		case <-deadline:
			return time.Time{}, fmt.Errorf("node %s: not seen as wanted within %s", name, timeout)
		case ev, open := <-w.ResultChan():
			if !open {
				return time.Time{}, fmt.Errorf("node %s: the watch closed", name)
			}
			if n, isNode := ev.Object.(*corev1.Node); isNode && n.Name == name && ok(n) {
				return time.Now(), nil
			}
		}
	}
}
