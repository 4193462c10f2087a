package cluster

import (
	"testing"
)

// FuzzRESTConfigFromData: whatever a tenant writes into a kubeconfig, an
// accepted one reads no file, names no proxy and runs no program (N1).
func FuzzRESTConfigFromData(f *testing.F) {
	for _, seed := range []string{
		"",
		"apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: https://1.2.3.4}\nusers:\n- name: u\n  user: {token: t}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n",
		"apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: https://attacker, insecure-skip-tls-verify: true}\nusers:\n- name: u\n  user: {tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n",
		"apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: https://a, proxy-url: http://p}\nusers:\n- name: u\n  user: {exec: {command: sh, apiVersion: client.authentication.k8s.io/v1}}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := RESTConfigFromData(data)
		if err != nil {
			return
		}
		switch {
		case cfg.BearerTokenFile != "":
			t.Fatalf("accepted a token file: %s", cfg.BearerTokenFile)
		case cfg.CertFile != "" || cfg.KeyFile != "" || cfg.CAFile != "":
			t.Fatalf("accepted files: cert %q key %q CA %q", cfg.CertFile, cfg.KeyFile, cfg.CAFile)
		case cfg.Proxy != nil:
			t.Fatal("accepted a proxy")
		case cfg.ExecProvider != nil || cfg.AuthProvider != nil:
			t.Fatal("accepted a program or an auth provider")
		}
	})
}
