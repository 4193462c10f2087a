package inplace

import (
	"fmt"
	"os"
	"path/filepath"

	runtimecatalog "sigs.k8s.io/cluster-api/api/runtime/catalog"
	runtimehooksv1 "sigs.k8s.io/cluster-api/api/runtime/hooks/v1alpha1"
	"sigs.k8s.io/cluster-api/exp/runtime/server"
	ctrl "sigs.k8s.io/controller-runtime"
)

// Handler names, as an ExtensionConfig's status lists them (with
// ".<ExtensionConfig name>" after each).
const (
	HandlerCanUpdateMachineSet = "can-update-machineset"
	HandlerCanUpdateMachine    = "can-update-machine"
	HandlerUpdateMachine       = "update-machine"
)

// Serve adds to mgr the runtime extension server of e: Cluster API's
// discovery and the three hooks, over TLS on port with the tls.crt and
// tls.key of certDir (reloaded when they change). clientCA names the file
// of certDir whose CAs a caller's client certificate must chain to
// (Cluster API's --runtime-extension-client-cert-file); "" serves any
// client, which only --in-place-updates-insecure-allow-any-client asks
// for. It serves on every replica: the hooks only read, and
// UpdateMachine's NodeCycle is one per update whoever creates it.
func Serve(mgr ctrl.Manager, port int, certDir, clientCA string, e *Extension) error {
	catalog := runtimecatalog.New()
	if err := runtimehooksv1.AddToCatalog(catalog); err != nil {
		return err
	}
	if clientCA != "" {
		if _, err := os.Stat(filepath.Join(certDir, clientCA)); err != nil {
			return fmt.Errorf("the client CA bundle that Cluster API's client certificate must chain to: %w (mount it at --in-place-updates-cert-dir, as config/in-place-updates does; --in-place-updates-insecure-allow-any-client serves any client)", err)
		}
	}
	srv, err := server.New(server.Options{Catalog: catalog, Port: port, CertDir: certDir, ClientCAName: clientCA})
	if err != nil {
		return err
	}
	for _, h := range []server.ExtensionHandler{
		{Hook: runtimehooksv1.CanUpdateMachineSet, Name: HandlerCanUpdateMachineSet, HandlerFunc: e.CanUpdateMachineSet},
		{Hook: runtimehooksv1.CanUpdateMachine, Name: HandlerCanUpdateMachine, HandlerFunc: e.CanUpdateMachine},
		{Hook: runtimehooksv1.UpdateMachine, Name: HandlerUpdateMachine, HandlerFunc: e.UpdateMachine},
	} {
		if err := srv.AddExtensionHandler(h); err != nil {
			return err
		}
	}
	return mgr.Add(srv)
}
