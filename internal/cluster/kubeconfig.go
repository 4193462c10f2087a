package cluster

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// RESTConfigFromData makes a client configuration from a workload cluster's
// kubeconfig, which a tenant may have written: only the data in it counts.
// A kubeconfig that names a file (a token file, a client certificate or
// key, a certificate authority), a proxy, or an exec or auth provider is
// refused, because the manager would read its own files or run commands and
// send what they give to a server the tenant chose: its service account
// token among them.
func RESTConfigFromData(data []byte) (*rest.Config, error) {
	cfg, err := clientcmd.Load(data)
	if err != nil {
		return nil, fmt.Errorf("parsing the kubeconfig: %w", err)
	}
	var refused []string
	for name, c := range cfg.Clusters {
		if c.CertificateAuthority != "" {
			refused = append(refused, fmt.Sprintf("cluster %q: certificate-authority (a file; use certificate-authority-data)", name))
		}
		if c.ProxyURL != "" {
			refused = append(refused, fmt.Sprintf("cluster %q: proxy-url", name))
		}
	}
	for name, u := range cfg.AuthInfos {
		for field, value := range map[string]string{
			"tokenFile (a file; use token)":                            u.TokenFile,
			"client-certificate (a file; use client-certificate-data)": u.ClientCertificate,
			"client-key (a file; use client-key-data)":                 u.ClientKey,
		} {
			if value != "" {
				refused = append(refused, fmt.Sprintf("user %q: %s", name, field))
			}
		}
		if u.Exec != nil {
			refused = append(refused, fmt.Sprintf("user %q: exec", name))
		}
		if u.AuthProvider != nil {
			refused = append(refused, fmt.Sprintf("user %q: auth-provider", name))
		}
	}
	if len(refused) > 0 {
		sort.Strings(refused)
		return nil, errors.New("the kubeconfig may hold only data (server, certificate and token data): refused " + strings.Join(refused, "; "))
	}
	rc, err := clientcmd.NewDefaultClientConfig(*cfg, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("reading the kubeconfig: %w", err)
	}
	return rc, nil
}
