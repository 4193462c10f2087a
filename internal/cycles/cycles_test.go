package cycles

import (
	"strings"
	"testing"
)

func TestNodeCycleNameIsDeterministicAndValid(t *testing.T) {
	a, b := Name("", "worker-1", "boot-a", 1), Name("", "worker-1", "boot-a", 1)
	if a != b {
		t.Fatalf("names differ for the same input: %s %s", a, b)
	}
	if Name("", "worker-1", "boot-b", 1) == a || Name("", "worker-1", "boot-a", 2) == a {
		t.Fatal("names must differ by boot and attempt")
	}
	if c := Name("prod", "worker-1", "boot-a", 1); c == a || !strings.HasPrefix(c, "prod-worker-1-") {
		t.Fatalf("a Cluster API node's name must start with its cluster's: %s", c)
	}
	long := Name("prod", strings.Repeat("n", 300), "boot", 12)
	if len(long) > 253 || !strings.HasSuffix(long, "-12") {
		t.Fatalf("long name %d chars: %s", len(long), long[len(long)-20:])
	}
}
