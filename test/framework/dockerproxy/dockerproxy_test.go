//go:build e2e

package dockerproxy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const engine = "/var/run/docker.sock"

// image is a local image with /bin/sh and /bin/sleep: the kind node image
// (make e2e-image; KIND_NODE_IMAGE names it).
func image() string {
	if img := os.Getenv("KIND_NODE_IMAGE"); img != "" {
		return img
	}
	return "nodecycle/kind-node:v1.37.2"
}

// client talks HTTP to the Docker API on a unix socket.
func client(socket string) *http.Client {
	return &http.Client{Timeout: time.Minute, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", socket)
	}}}
}

func call(t *testing.T, c *http.Client, method, path string, body any, header ...string) (int, []byte) {
	t.Helper()
	var in io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		in = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://docker/v1.41"+path, in)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// create makes a privileged container (as CAPD does) and returns its ID.
func create(t *testing.T, c *http.Client, name string) string {
	t.Helper()
	code, out := call(t, c, http.MethodPost, "/containers/create?name="+name, map[string]any{
		"Image": image(), "Entrypoint": []string{"/bin/sleep"}, "Cmd": []string{"300"},
		"HostConfig": map[string]any{"Privileged": true, "SecurityOpt": []string{"seccomp=unconfined"}},
	})
	if code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, out)
	}
	var created struct{ ID string }
	_ = json.Unmarshal(out, &created)
	t.Cleanup(func() { call(t, client(engine), http.MethodDelete, "/containers/"+created.ID+"?force=true", nil) })
	return created.ID
}

// The engine refuses a privileged container; through the proxy the same
// request runs one with the engine's capabilities, and a privileged exec
// runs in it, its output streamed back both ways Docker clients read it.
func TestPrivilegedThroughTheProxy(t *testing.T) {
	direct := client(engine)
	name := fmt.Sprintf("nodecycle-dockerproxy-%d", time.Now().UnixNano())
	id := create(t, direct, name+"-direct")
	if code, out := call(t, direct, http.MethodPost, "/containers/"+id+"/start", nil); code < 400 {
		t.Logf("this engine runs privileged containers itself (%d)", code)
	} else {
		t.Logf("the engine refuses: %s", out)
	}

	p, err := Start(filepath.Join(t.TempDir(), "docker.sock"), engine)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	proxied := client(p.Socket)
	id = create(t, proxied, name)
	if code, out := call(t, proxied, http.MethodPost, "/containers/"+id+"/start", nil); code != http.StatusNoContent {
		t.Fatalf("start through the proxy: %d %s", code, out)
	}
	_, out := call(t, proxied, http.MethodGet, "/containers/"+id+"/json", nil)
	var inspect struct {
		HostConfig struct {
			Privileged bool
			CapAdd     []string
		}
		State struct{ Running bool }
	}
	_ = json.Unmarshal(out, &inspect)
	if !inspect.State.Running || inspect.HostConfig.Privileged || len(inspect.HostConfig.CapAdd) == 0 {
		t.Fatalf("container through the proxy: %s", out)
	}

	for _, upgrade := range []bool{false, true} {
		code, out := call(t, proxied, http.MethodPost, "/containers/"+id+"/exec", map[string]any{
			"Cmd": []string{"/bin/sh", "-c", "echo hello from $(id -u)"}, "Privileged": true, "AttachStdout": true, "Tty": true,
		})
		if code != http.StatusCreated {
			t.Fatalf("exec create: %d %s", code, out)
		}
		var exec struct{ ID string }
		_ = json.Unmarshal(out, &exec)
		headers := []string{}
		if upgrade {
			headers = []string{"Connection", "Upgrade", "Upgrade", "tcp"}
		}
		_, out = call(t, proxied, http.MethodPost, "/exec/"+exec.ID+"/start", map[string]any{"Detach": false, "Tty": true}, headers...)
		if !strings.Contains(string(out), "hello from 0") {
			t.Errorf("exec output (upgrade %t): %q", upgrade, out)
		}
	}
	if n := p.Rewritten.Load(); n != 3 {
		t.Errorf("%d requests rewritten, want 3 (one create, two execs)", n)
	}
}
