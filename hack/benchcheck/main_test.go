package main

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	got := parse(strings.NewReader("goos: linux\nBenchmarkSentinelToCordon-2  1  123 ns/op  34.5 cordon-p50-ms  132.8 cordon-max-ms\nPASS\n"))
	if v := got["BenchmarkSentinelToCordon"]["cordon-p50-ms"]; v != 34.5 {
		t.Fatalf("cordon-p50-ms = %v, want 34.5 (%v)", v, got)
	}
	if _, ok := got["BenchmarkSentinelToCordon"]["ns/op"]; !ok {
		t.Fatalf("ns/op missing: %v", got)
	}
}
