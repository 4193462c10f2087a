package sim

import "sync"

// InFlight is the kubelets' own record of the reboots in progress: from the
// moment a node goes down until it is up on a new boot. Its Max is the
// "one node at a time" promise measured where the reboots happen, apart
// from anything the manager writes. Kubelets of one cluster share one.
type InFlight struct {
	mu     sync.Mutex
	down   map[string]bool
	events []inFlightEvent
}

type inFlightEvent struct {
	node string
	down bool
}

// Begin records that node went down.
func (f *InFlight) Begin(node string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down == nil {
		f.down = map[string]bool{}
	}
	if !f.down[node] {
		f.down[node] = true
		f.events = append(f.events, inFlightEvent{node, true})
	}
}

// End records that node is up on a new boot.
func (f *InFlight) End(node string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down[node] {
		delete(f.down, node)
		f.events = append(f.events, inFlightEvent{node, false})
	}
}

// Max returns the most reboots in progress at once among the nodes of
// which (all nodes when nil), and how many of theirs began in all.
func (f *InFlight) Max(which func(node string) bool) (most, started int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := 0
	for _, e := range f.events {
		if which != nil && !which(e.node) {
			continue
		}
		if e.down {
			now++
			started++
			most = max(most, now)
		} else {
			now--
		}
	}
	return most, started
}
