package agent

import (
	"io"
	"strings"
	"testing"
)

func TestParseOptionsRejectsBadInput(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no node name", nil, "--node-name is required"},
		{"unknown reboot method", []string{"--node-name=n", "--reboot-method=kexec"}, "--reboot-method must be command or signal"},
		{"heartbeat too often", []string{"--node-name=n", "--heartbeat-period=5m"}, "--heartbeat-period must be 0 (off) or at least 1h"},
		{"malformed recheck period", []string{"--node-name=n", "--recheck-period=often"}, "recheck-period"},
		{"recheck too fast", []string{"--node-name=n", "--recheck-period=10ms"}, "--recheck-period must be at least 1s"},
		{"empty reboot command", []string{"--node-name=n", "--reboot-command="}, "--reboot-command is required"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseOptions(tc.args, func(string) (string, bool) { return "", false }, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseOptions(%v) = %v, want an error mentioning %q", tc.args, err, tc.want)
			}
		})
	}
}

func TestParseOptionsNodeNameFromDownwardAPI(t *testing.T) {
	env := map[string]string{"NODE_NAME": "worker-7", "NODECYCLE_REBOOT_METHOD": "signal"}
	o, err := ParseOptions(nil, func(k string) (string, bool) { v, ok := env[k]; return v, ok }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.NodeName != "worker-7" {
		t.Fatalf("node name %q", o.NodeName)
	}
	if _, ok := o.Rebooter().(SignalRebooter); !ok {
		t.Fatalf("rebooter %T, want SignalRebooter", o.Rebooter())
	}
	if _, ok := o.Checker().(FileChecker); !ok || o.WatchedFile() != DefaultSentinelFile {
		t.Fatalf("checker %T watching %q", o.Checker(), o.WatchedFile())
	}
}
