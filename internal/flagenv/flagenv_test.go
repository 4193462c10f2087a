package flagenv

import (
	"flag"
	"testing"
	"time"
)

func TestApply(t *testing.T) {
	env := map[string]string{
		"NODECYCLE_DRAIN_TIMEOUT": "2m",
		"NODE_NAME":               "worker-1",
		"NODECYCLE_RECHECK":       "5s",
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }

	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	drain := fs.Duration("drain-timeout", time.Minute, "")
	node := fs.String("node-name", "", "")
	recheck := fs.Duration("recheck", time.Minute, "")
	if err := fs.Parse([]string{"--recheck=7s"}); err != nil {
		t.Fatal(err)
	}
	if err := Apply(fs, lookup, map[string][]string{"node-name": {"NODE_NAME"}}); err != nil {
		t.Fatal(err)
	}
	if *drain != 2*time.Minute {
		t.Errorf("drain-timeout from env: got %v", *drain)
	}
	if *node != "worker-1" {
		t.Errorf("node-name from alias: got %q", *node)
	}
	if *recheck != 7*time.Second {
		t.Errorf("command line must win over env: got %v", *recheck)
	}

	env["NODECYCLE_DRAIN_TIMEOUT"] = "soon"
	fs2 := flag.NewFlagSet("t", flag.ContinueOnError)
	fs2.Duration("drain-timeout", time.Minute, "")
	err := Apply(fs2, lookup, nil)
	if err == nil || err.Error() == "" {
		t.Fatal("a malformed duration in the environment must be an error")
	}
	t.Log(err)
}
