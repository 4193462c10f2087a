package redfish

import (
	"crypto/tls"
	"net/http"
)

func transport(cfg *tls.Config) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = cfg.Clone()
	return t
}
