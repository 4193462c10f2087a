// Command benchcheck reads `go test -bench` output on stdin and compares
// the fast benchmarks' figures with their targets (docs/benchmarks.md),
// printing PASS or MISS per target. It reports; it does not fail: a
// benchmark on a busy machine is no verdict (make bench-check, in CI's
// log).
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// target is one figure's limit: benchmark, metric unit, at most.
type target struct {
	benchmark, unit, what string
	max                   float64
}

var targets = []target{
	{"BenchmarkSentinelToCordon", "cordon-p50-ms", "sentinel -> cordon, p50 (ms)", 100},
	{"BenchmarkSentinelToCordonQueryGate", "cordon-p50-ms", "sentinel -> cordon with a PromQL gate, p50 (ms)", 100},
	{"BenchmarkManagerDeadTime", "dead-p50-ms", "overhead per node: uncordon -> next cordon, p50 (ms)", 50},
	{"BenchmarkWritesPerCycle", "writes/cycle", "API writes per in-place cycle, manager + agents", 25},
	{"BenchmarkDetectionLatency", "p99-ms", "detection: sentinel -> RebootRequired=True, p99 (ms)", 1000},
}

func main() {
	results := parse(os.Stdin)
	fmt.Printf("%-5s %-55s %10s %10s\n", "", "target", "measured", "at most")
	for _, t := range targets {
		v, ok := results[t.benchmark][t.unit]
		switch {
		case !ok:
			fmt.Printf("%-5s %-55s %10s %10g  (%s did not report %s)\n", "MISS", t.what, "-", t.max, t.benchmark, t.unit)
		case v <= t.max:
			fmt.Printf("%-5s %-55s %10.4g %10g\n", "PASS", t.what, v, t.max)
		default:
			fmt.Printf("%-5s %-55s %10.4g %10g\n", "MISS", t.what, v, t.max)
		}
	}
}

// parse reads benchmark lines: name-P N ns/op value unit value unit ...
func parse(r io.Reader) map[string]map[string]float64 {
	out := map[string]map[string]float64{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name, _, _ := strings.Cut(f[0], "-")
		if out[name] == nil {
			out[name] = map[string]float64{}
		}
		for i := 2; i+1 < len(f); i += 2 {
			if v, err := strconv.ParseFloat(f[i], 64); err == nil {
				out[name][f[i+1]] = v
			}
		}
	}
	return out
}
