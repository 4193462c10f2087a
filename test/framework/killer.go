package framework

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/test/framework/localkube"
)

// BuildManager builds the manager binary into dir and returns its path.
func BuildManager(dir string) (string, error) {
	bin := filepath.Join(dir, "nodecycle-manager")
	if out, err := exec.Command("go", "build", "-o", bin, filepath.Join(localkube.RepoRoot(), "cmd", "manager")).CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the manager: %w: %s", err, out)
	}
	return bin, nil
}

// Killer runs the real manager binary and kills it with SIGKILL at random
// moments (after MinUp to MaxUp), starting a new one each time, until
// Stop: the crash campaigns' manager.
type Killer struct {
	Bin          string
	Args         []string
	Output       io.Writer
	MinUp, MaxUp time.Duration

	kills atomic.Int32
	stop  chan struct{}
	done  chan struct{}
	err   error
}

// Start starts the first manager.
func (k *Killer) Start() {
	k.stop, k.done = make(chan struct{}), make(chan struct{})
	go k.run()
}

// Kills is how many times a manager was killed so far.
func (k *Killer) Kills() int { return int(k.kills.Load()) }

// Stop ends the last manager with SIGTERM (a second call does nothing);
// it returns an error when a manager could not be started.
func (k *Killer) Stop() error {
	select {
	case <-k.stop:
	default:
		close(k.stop)
	}
	<-k.done
	return k.err
}

func (k *Killer) run() {
	defer close(k.done)
	for {
		cmd := exec.Command(k.Bin, k.Args...)
		cmd.Stdout, cmd.Stderr = k.Output, k.Output
		if err := cmd.Start(); err != nil {
			k.err = fmt.Errorf("starting the manager: %w", err)
			return
		}
		up := k.MinUp + time.Duration(rand.Int64N(int64(k.MaxUp-k.MinUp))) //nolint:gosec // a test's kill schedule
		select {
		case <-k.stop:
			_ = cmd.Process.Signal(syscall.SIGTERM)
			_ = cmd.Wait()
			return
		case <-time.After(up):
			_ = cmd.Process.Kill() // SIGKILL: no deferred clean-up, no graceful shutdown
			_ = cmd.Wait()
			k.kills.Add(1)
		}
	}
}

// Succeeded counts the NodeCycles of list that succeeded and keep says
// are of interest: the campaigns' progress.
func Succeeded(list []v1alpha1.NodeCycle, keep func(*v1alpha1.NodeCycle) bool) int {
	n := 0
	for i := range list {
		if list[i].Status.Phase == v1alpha1.PhaseSucceeded && keep(&list[i]) {
			n++
		}
	}
	return n
}
