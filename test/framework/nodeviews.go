package framework

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"

	"k8s.io/client-go/rest"
)

// FleetClusterLabel names the workload cluster a Node belongs to when
// several clusters share one API server (NodeViews).
const FleetClusterLabel = "fleet.nodecycle.io/cluster"

// NodeViews lets many workload clusters share one real API server, for
// measurements with more clusters than the machine holds API servers: each
// cluster's Nodes carry FleetClusterLabel=<cluster>, and the cluster is
// reached at <URL>/clusters/<cluster>, where lists and watches of Nodes
// return its own Nodes only. Every other request, reads and writes of a
// Node by name included, passes through unchanged.
type NodeViews struct {
	URL string
	srv *http.Server
}

// ServeNodeViews serves NodeViews of the API server cfg reaches, on a
// loopback port, as cfg's user.
func ServeNodeViews(cfg *rest.Config) (*NodeViews, error) {
	target, err := url.Parse(cfg.Host)
	if err != nil {
		return nil, err
	}
	transport, err := rest.TransportFor(cfg)
	if err != nil {
		return nil, err
	}
	proxy := &httputil.ReverseProxy{
		Transport:     transport,
		FlushInterval: -1, // watches stream
		Rewrite: func(r *httputil.ProxyRequest) {
			cluster, rest, _ := strings.Cut(strings.TrimPrefix(r.In.URL.Path, "/clusters/"), "/")
			r.SetURL(target)
			r.Out.URL.Path, r.Out.URL.RawPath = "/"+rest, ""
			r.Out.Host = target.Host
			if r.In.Method == http.MethodGet && r.Out.URL.Path == "/api/v1/nodes" {
				q := r.Out.URL.Query()
				sel := FleetClusterLabel + "=" + cluster
				if s := q.Get("labelSelector"); s != "" {
					sel += "," + s
				}
				q.Set("labelSelector", sel)
				r.Out.URL.RawQuery = q.Encode()
			}
		},
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	v := &NodeViews{URL: "http://" + l.Addr().String(), srv: &http.Server{Handler: proxy}}
	go func() { _ = v.srv.Serve(l) }()
	return v, nil
}

// Config reaches cluster's view.
func (v *NodeViews) Config(cluster string) *rest.Config {
	return &rest.Config{Host: fmt.Sprintf("%s/clusters/%s", v.URL, cluster), Username: "fleet", QPS: -1}
}

// Close stops serving.
func (v *NodeViews) Close() error {
	if err := v.srv.Close(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
