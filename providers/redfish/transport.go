package redfish

import (
	"crypto/tls"
	"net/http"
)

func transport(insecure bool) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{InsecureSkipVerify: insecure} //nolint:gosec // an explicit setting of the policy
	return t
}
