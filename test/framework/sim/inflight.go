package sim

import "sync"

// InFlight is the kubelets' own record of the reboots in progress: from the
// moment a node goes down until it is up on a new boot. Its Max is the
// "one node at a time" promise measured where the reboots happen, apart
// from anything the manager writes. Kubelets of one cluster share one.
type InFlight struct {
	mu      sync.Mutex
	down    map[string]bool
	max     int
	started int
}

// Begin records that node went down.
func (f *InFlight) Begin(node string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down == nil {
		f.down = map[string]bool{}
	}
	if f.down[node] {
		return
	}
	f.down[node] = true
	f.started++
	f.max = max(f.max, len(f.down))
}

// End records that node is up on a new boot.
func (f *InFlight) End(node string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.down, node)
}

// Max returns the most reboots that were in progress at once, and how many
// began in all.
func (f *InFlight) Max() (most, started int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.max, f.started
}
