package agent

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Rebooter reboots the node. It returns once the reboot has been started;
// the proof that it happened is the new boot ID the manager waits for.
type Rebooter interface {
	Reboot(ctx context.Context) error
}

// CommandRebooter runs a command, by default systemctl reboot in the host's
// mount namespace.
type CommandRebooter struct {
	Argv    []string
	Timeout time.Duration
}

// Reboot implements Rebooter.
func (c CommandRebooter) Reboot(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.Argv[0], c.Argv[1:]...)
	cmd.WaitDelay = time.Second
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("reboot command %q: %w: %s", strings.Join(c.Argv, " "), err, trim(out))
	}
	return nil
}

// SignalRebooter sends SIGRTMIN+5 to PID 1, which systemd takes as "start
// reboot.target". It needs only CAP_KILL and the host PID namespace.
type SignalRebooter struct {
	// Kill is syscall.Kill; tests replace it.
	Kill func(pid int, sig syscall.Signal) error
}

// sigRTMin is SIGRTMIN on Linux as the kernel numbers it (glibc reserves 32 and 33).
const sigRTMin = 34

// Reboot implements Rebooter.
func (s SignalRebooter) Reboot(context.Context) error {
	kill := s.Kill
	if kill == nil {
		kill = syscall.Kill
	}
	if err := kill(1, syscall.Signal(sigRTMin+5)); err != nil {
		return fmt.Errorf("sending SIGRTMIN+5 to PID 1: %w", err)
	}
	return nil
}
