package kind

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Process is one of nodecycle's processes in a kind node, seen from the
// host: the nodes are containers on this kernel, so their processes are
// this host's too.
type Process struct {
	PID int
	// Node is the agent's NODE_NAME, empty for the manager.
	Node string
	// Hostname is the process's HOSTNAME: its pod's name.
	Hostname string
}

// Processes finds the running processes whose command is name
// (nodecycle-manager or nodecycle-agent).
func Processes(name string) ([]Process, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var out []Process
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || filepath.Base(string(bytes.SplitN(cmdline, []byte{0}, 2)[0])) != name {
			continue
		}
		p := Process{PID: pid}
		if environ, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ")); err == nil {
			for _, kv := range strings.Split(string(environ), "\x00") {
				if v, ok := strings.CutPrefix(kv, "NODE_NAME="); ok {
					p.Node = v
				}
				if v, ok := strings.CutPrefix(kv, "HOSTNAME="); ok {
					p.Hostname = v
				}
			}
		}
		out = append(out, p)
	}
	return out, nil
}
