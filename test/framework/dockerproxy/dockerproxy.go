// Package dockerproxy stands between a Docker API client and an engine that
// refuses privileged containers, as the one the end-to-end tests run on
// does. It forwards every request to the engine and rewrites two: a
// container create that asks for Privileged becomes one with every
// capability the engine grants (all but CAP_SYS_RESOURCE), unconfined
// seccomp, AppArmor and system paths, /dev/kmsg and every device; an exec
// create that asks for Privileged loses the flag (an exec has the
// container's own capabilities). These are the flags kind's nodes run with
// on such an engine (hack/kind/bin/docker does the same for the CLI); the
// Cluster API Docker provider (CAPD), which only speaks the API, reaches
// the engine through the proxy.
package dockerproxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"sync/atomic"
)

// Proxy serves the Docker API on a unix socket.
type Proxy struct {
	// Socket is the proxy's unix socket.
	Socket string
	server *http.Server
	// Rewritten counts the requests rewritten.
	Rewritten atomic.Int64
}

var (
	containerCreate = regexp.MustCompile(`^(/v[0-9.]+)?/containers/create$`)
	execCreate      = regexp.MustCompile(`^(/v[0-9.]+)?/containers/[^/]+/exec$`)
)

// Start serves on socket, forwarding to the engine's socket.
func Start(socket, engine string) (*Proxy, error) {
	_ = os.Remove(socket)
	l, err := net.Listen("unix", socket)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(socket, 0o660); err != nil {
		_ = l.Close()
		return nil, err
	}
	p := &Proxy{Socket: socket}
	forward := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(&url.URL{Scheme: "http", Host: "docker"})
			r.Out.Host = r.In.Host
		},
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", engine)
		}},
		FlushInterval: -1, // logs, events and attach stream
	}
	p.server = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && (containerCreate.MatchString(r.URL.Path) || execCreate.MatchString(r.URL.Path)) {
			if err := p.rewrite(r, containerCreate.MatchString(r.URL.Path)); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
		}
		forward.ServeHTTP(w, r)
	}), ReadHeaderTimeout: 10e9}
	go func() { _ = p.server.Serve(l) }()
	return p, nil
}

// Close stops the proxy.
func (p *Proxy) Close() error {
	err := p.server.Close()
	if rmErr := os.Remove(p.Socket); rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) && err == nil {
		err = rmErr
	}
	return err
}

// rewrite turns a privileged create into the flags the engine grants.
func (p *Proxy) rewrite(r *http.Request, container bool) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	var req map[string]any
	if err = json.Unmarshal(body, &req); err != nil {
		return fmt.Errorf("dockerproxy: %s: %w", r.URL.Path, err)
	}
	changed := false
	if container {
		changed = unprivilegeHost(req)
	} else if priv, _ := req["Privileged"].(bool); priv {
		req["Privileged"] = false
		changed = true
	}
	if changed {
		p.Rewritten.Add(1)
		if body, err = json.Marshal(req); err != nil {
			return err
		}
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	r.Header.Set("Content-Length", strconv.Itoa(len(body)))
	return nil
}

// unprivilegeHost rewrites a container create's HostConfig.Privileged.
func unprivilegeHost(req map[string]any) bool {
	host, _ := req["HostConfig"].(map[string]any)
	if priv, _ := host["Privileged"].(bool); !priv {
		return false
	}
	host["Privileged"] = false
	host["CapAdd"] = appendNew(host["CapAdd"], "ALL")
	host["CapDrop"] = appendNew(host["CapDrop"], "SYS_RESOURCE")
	host["SecurityOpt"] = appendNew(host["SecurityOpt"], "seccomp=unconfined", "apparmor=unconfined")
	// The CLI's --security-opt systempaths=unconfined: nothing masked or read-only under /proc and /sys.
	host["MaskedPaths"], host["ReadonlyPaths"] = []any{}, []any{}
	host["DeviceCgroupRules"] = appendNew(host["DeviceCgroupRules"], "a *:* rwm")
	devices, _ := host["Devices"].([]any)
	host["Devices"] = append(devices, map[string]any{"PathOnHost": "/dev/kmsg", "PathInContainer": "/dev/kmsg", "CgroupPermissions": "rwm"})
	return true
}

// appendNew appends the strings not yet in list (a JSON array or null).
func appendNew(list any, add ...string) []any {
	out, _ := list.([]any)
	for _, a := range add {
		found := false
		for _, v := range out {
			found = found || v == a
		}
		if !found {
			out = append(out, a)
		}
	}
	return out
}
