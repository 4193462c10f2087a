package framework

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/client-go/util/cert"
)

// FleetClusterLabel names the workload cluster a Node belongs to when
// several clusters share one API server (NodeViews).
const FleetClusterLabel = "fleet.nodecycle.io/cluster"

// NodeViews lets many workload clusters share one real API server, for
// measurements with more clusters than the machine holds API servers: each
// cluster's Nodes carry FleetClusterLabel=<cluster>, and the cluster is
// reached at <URL>/clusters/<cluster>, where lists and watches of Nodes
// return its own Nodes only. Every other request, reads and writes of a
// Node by name included, passes through unchanged. The views speak TLS
// and HTTP/2 as API servers do, and each cluster reaches them under a
// server name of its own (<cluster>.fleet.test), so that a client keeps
// one connection per cluster, as with an API server per cluster.
type NodeViews struct {
	URL string
	ca  []byte
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
	certPEM, keyPEM, err := cert.GenerateSelfSignedCertKey("fleet.test", []net.IP{net.IPv4(127, 0, 0, 1)}, []string{"*.fleet.test"})
	if err != nil {
		return nil, err
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	v := &NodeViews{URL: "https://" + l.Addr().String(), ca: certPEM,
		srv: &http.Server{Handler: proxy, TLSConfig: &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}}}
	go func() { _ = v.srv.ServeTLS(l, "", "") }()
	return v, nil
}

// Kubeconfig reaches cluster's view (the API server ignores its token:
// the views reach it as their own user).
func (v *NodeViews) Kubeconfig(cluster string) ([]byte, error) {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[cluster] = &clientcmdapi.Cluster{Server: fmt.Sprintf("%s/clusters/%s", v.URL, cluster),
		CertificateAuthorityData: v.ca, TLSServerName: cluster + ".fleet.test"}
	cfg.AuthInfos["fleet"] = &clientcmdapi.AuthInfo{Token: "fleet"}
	cfg.Contexts[cluster] = &clientcmdapi.Context{Cluster: cluster, AuthInfo: "fleet"}
	cfg.CurrentContext = cluster
	return clientcmd.Write(*cfg)
}

// Close stops serving.
func (v *NodeViews) Close() error {
	if err := v.srv.Close(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
