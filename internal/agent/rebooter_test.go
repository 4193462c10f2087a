package agent

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"
)

func TestSignalRebooterSendsSIGRTMINPlus5ToPID1(t *testing.T) {
	var gotPID int
	var gotSig syscall.Signal
	r := SignalRebooter{Kill: func(pid int, sig syscall.Signal) error { gotPID, gotSig = pid, sig; return nil }}
	if err := r.Reboot(context.Background()); err != nil {
		t.Fatal(err)
	}
	if gotPID != 1 || gotSig != syscall.Signal(39) {
		t.Fatalf("sent signal %d to PID %d, want 39 (SIGRTMIN+5) to PID 1", gotSig, gotPID)
	}
	r.Kill = func(int, syscall.Signal) error { return syscall.EPERM }
	if err := r.Reboot(context.Background()); !errors.Is(err, syscall.EPERM) {
		t.Fatalf("error %v, want EPERM wrapped", err)
	}
}

func TestCommandRebooterReportsFailure(t *testing.T) {
	err := CommandRebooter{Argv: HostCommand("echo no permission >&2; exit 3", false), Timeout: 5e9}.Reboot(context.Background())
	if err == nil || !strings.Contains(err.Error(), "no permission") {
		t.Fatalf("error %v, want the command's output in it", err)
	}
}
