package cluster

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

// kubeconfigFor is a tenant's kubeconfig for server (TLS not verified)
// with user (YAML flow mapping).
func kubeconfigFor(server, user string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: %q, insecure-skip-tls-verify: true}
users:
- name: u
  user: %s
contexts:
- name: x
  context: {cluster: c, user: u}
current-context: x
`, server, user)
}

// A tenant who writes its cluster's kubeconfig Secret points it at its own
// server and names the manager's token file: the manager must neither read
// the file nor send anything to that server.
func TestConnectRefusesAKubeconfigThatNamesTheManagersTokenFile(t *testing.T) {
	var mu sync.Mutex
	var received []string
	attacker := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		received = append(received, r.Method+" "+r.URL.Path+" Authorization: "+r.Header.Get("Authorization"))
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	defer attacker.Close()
	tokenFile := filepath.Join(t.TempDir(), "token") // the manager's /var/run/secrets/kubernetes.io/serviceaccount/token
	if err := os.WriteFile(tokenFile, []byte("the-managers-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	kubeconfig := kubeconfigFor(attacker.URL, fmt.Sprintf("{tokenFile: %q}", tokenFile))
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "tenant-a", Name: "wc-kubeconfig"},
		Data: map[string][]byte{"value": []byte(kubeconfig)}}
	secrets := fake.NewClientBuilder().WithScheme(clientgoscheme.Scheme).WithObjects(secret).Build()
	c := NewConnections(secrets, secrets, clientgoscheme.Scheme, ConnectionOptions{})

	_, err := c.connect(context.Background(), client.ObjectKey{Namespace: "tenant-a", Name: "wc"})
	if err == nil || !strings.Contains(err.Error(), "tokenFile") {
		t.Errorf("connect: %v, want a refusal that names tokenFile", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(received) > 0 {
		t.Errorf("the tenant's server received %v", received)
	}
}

func TestRESTConfigFromDataTakesOnlyData(t *testing.T) {
	const head = "apiVersion: v1\nkind: Config\ncurrent-context: x\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\n"
	for name, tc := range map[string]struct {
		cluster, user string
		refused       string // "" when accepted
	}{
		"token and CA data":       {cluster: `{server: "https://wc:6443", certificate-authority-data: ""}`, user: `{token: abc}`},
		"token file":              {cluster: `{server: "https://wc:6443"}`, user: `{tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token}`, refused: "tokenFile"},
		"client certificate file": {cluster: `{server: "https://wc:6443"}`, user: `{client-certificate: /etc/ssl/c.pem, client-key-data: eA==}`, refused: "client-certificate"},
		"client key file":         {cluster: `{server: "https://wc:6443"}`, user: `{client-certificate-data: eA==, client-key: /etc/ssl/k.pem}`, refused: "client-key"},
		"CA file":                 {cluster: `{server: "https://wc:6443", certificate-authority: /var/run/secrets/kubernetes.io/serviceaccount/ca.crt}`, user: `{token: abc}`, refused: "certificate-authority"},
		"proxy":                   {cluster: `{server: "https://wc:6443", proxy-url: "http://attacker:3128"}`, user: `{token: abc}`, refused: "proxy-url"},
		"exec":                    {cluster: `{server: "https://wc:6443"}`, user: `{exec: {command: cat, apiVersion: client.authentication.k8s.io/v1}}`, refused: "exec"},
		"auth provider":           {cluster: `{server: "https://wc:6443"}`, user: `{auth-provider: {name: oidc}}`, refused: "auth-provider"},
	} {
		t.Run(name, func(t *testing.T) {
			data := head + "clusters:\n- name: c\n  cluster: " + tc.cluster + "\nusers:\n- name: u\n  user: " + tc.user + "\n"
			cfg, err := RESTConfigFromData([]byte(data))
			switch {
			case tc.refused == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.refused == "" && cfg.BearerToken != "abc":
				t.Errorf("token %q", cfg.BearerToken)
			case tc.refused != "" && (err == nil || !strings.Contains(err.Error(), tc.refused)):
				t.Errorf("got %v, want a refusal naming %s", err, tc.refused)
			}
		})
	}
}

// I7: a tenant's kubeconfig points at a server of theirs that answers the
// probe with a body (what it fetched from inside the manager's network,
// say): the error, which ends in a tenant-visible Event, keeps the status
// code and not a byte of the body.
func TestTheProbeDoesNotEchoTheServersAnswer(t *testing.T) {
	const leak = "instance-metadata: iam-token=s3cr3t"
	server := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
		_, _ = w.Write([]byte(leak))
	}))
	defer server.Close()
	kubeconfig := kubeconfigFor(server.URL, "{token: t}")
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "tenant-a", Name: "wc-kubeconfig"},
		Data: map[string][]byte{"value": []byte(kubeconfig)}}
	secrets := fake.NewClientBuilder().WithScheme(clientgoscheme.Scheme).WithObjects(secret).Build()
	c := NewConnections(secrets, secrets, clientgoscheme.Scheme, ConnectionOptions{})
	_, err := c.connect(context.Background(), client.ObjectKey{Namespace: "tenant-a", Name: "wc"})
	if err == nil || strings.Contains(err.Error(), "s3cr3t") || !strings.Contains(err.Error(), "HTTP 502") {
		t.Fatalf("connect: %v; want the status code and none of the body", err)
	}
}
