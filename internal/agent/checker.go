package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
)

// Checker decides whether the node needs a reboot. It returns the
// RebootRequired condition to publish (type, status, reason, message).
type Checker interface {
	Check(ctx context.Context) corev1.NodeCondition
}

func condition(status corev1.ConditionStatus, reason v1alpha1.Reason, message string) corev1.NodeCondition {
	return corev1.NodeCondition{Type: v1alpha1.ConditionRebootRequired, Status: status, Reason: string(reason), Message: message}
}

// FileChecker says a reboot is required while a sentinel file exists (the
// Debian/Ubuntu convention of /var/run/reboot-required).
type FileChecker struct {
	Path string
}

// Check implements Checker.
func (f FileChecker) Check(context.Context) corev1.NodeCondition {
	_, err := os.Stat(f.Path)
	switch {
	case err == nil:
		return condition(corev1.ConditionTrue, v1alpha1.ReasonSentinelFilePresent, fmt.Sprintf("Sentinel file %s is present", f.Path))
	case errors.Is(err, os.ErrNotExist):
		return condition(corev1.ConditionFalse, v1alpha1.ReasonNoRebootRequired, fmt.Sprintf("Sentinel file %s is absent", f.Path))
	default:
		return condition(corev1.ConditionUnknown, v1alpha1.ReasonSentinelCheckFailed, fmt.Sprintf("Checking sentinel file %s: %v", f.Path, err))
	}
}

// CommandChecker says a reboot is required when a command exits 0, and not
// when it exits with any other code. A command that cannot start or runs
// past its timeout makes the answer Unknown.
type CommandChecker struct {
	// Argv is the command and its arguments.
	Argv    []string
	Timeout time.Duration
}

// Check implements Checker.
func (c CommandChecker) Check(ctx context.Context) corev1.NodeCondition {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	shown := strings.Join(c.Argv, " ")
	cmd := exec.CommandContext(ctx, c.Argv[0], c.Argv[1:]...)
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return condition(corev1.ConditionUnknown, v1alpha1.ReasonSentinelCheckFailed, fmt.Sprintf("Sentinel command %q did not finish within %s", shown, c.Timeout))
	case err == nil:
		return condition(corev1.ConditionTrue, v1alpha1.ReasonSentinelCommandSucceeded, fmt.Sprintf("Sentinel command %q exited 0", shown))
	case errors.As(err, &exit):
		return condition(corev1.ConditionFalse, v1alpha1.ReasonNoRebootRequired, fmt.Sprintf("Sentinel command %q exited %d", shown, exit.ExitCode()))
	default:
		return condition(corev1.ConditionUnknown, v1alpha1.ReasonSentinelCheckFailed, fmt.Sprintf("Running sentinel command %q: %v %s", shown, err, trim(out)))
	}
}

func trim(out []byte) string {
	s := strings.TrimSpace(string(out))
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// HostCommand wraps a shell command line so that it runs in the namespaces of
// the host's PID 1 (mount, UTS, IPC, network, PID) when host is true.
func HostCommand(line string, host bool) []string {
	argv := []string{"/bin/sh", "-c", line}
	if host {
		argv = append([]string{"nsenter", "--target", "1", "--mount", "--uts", "--ipc", "--net", "--pid", "--"}, argv...)
	}
	return argv
}
