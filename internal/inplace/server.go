package inplace

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"time"

	runtimecatalog "sigs.k8s.io/cluster-api/api/runtime/catalog"
	runtimehooksv1 "sigs.k8s.io/cluster-api/api/runtime/hooks/v1alpha1"
	"sigs.k8s.io/cluster-api/exp/runtime/server"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/manager"
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
	files := []string{"tls.crt", "tls.key"}
	if clientCA != "" {
		files = append(files, clientCA)
	}
	return mgr.Add(&waitForFiles{Runnable: srv, dir: certDir, files: files, poll: certPoll})
}

// certPoll is how often the hooks look for their certificate files.
var certPoll = 5 * time.Second

// waitForFiles starts its Runnable once every file is in dir. The
// manager's certificate and Cluster API's CA arrive in a Secret that is
// made after the manager is installed (clusterctl init --addon nodecycle,
// then config/in-place-updates/registration) and mounted as an optional
// volume: until then the hooks wait, and the rest of the manager runs.
type waitForFiles struct {
	manager.Runnable
	dir   string
	files []string
	poll  time.Duration
}

// NeedLeaderElection is false: every replica serves the hooks.
func (w *waitForFiles) NeedLeaderElection() bool { return false }

func (w *waitForFiles) Start(ctx context.Context) error {
	log := ctrl.LoggerFrom(ctx).WithName("in-place-updates")
	for logged := false; ; logged = true {
		missing := w.missing()
		if len(missing) == 0 {
			break
		}
		if !logged {
			log.Info("The in-place update hooks wait for their certificate and client CA (the Secret nodecycle-in-place-updates-cert of config/in-place-updates/registration)",
				"dir", w.dir, "missing", missing)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(w.poll):
		}
	}
	log.Info("Serving Cluster API's in-place update hooks", "dir", w.dir)
	return w.Runnable.Start(ctx)
}

// missing names the files that are not in dir yet, or not usable yet: a
// key pair that does not load, a CA file without a certificate (a file
// being written, seen between its creation and its last byte, is not
// served: the server would fail to start on it and stop the manager).
func (w *waitForFiles) missing() []string {
	var out []string
	for _, f := range w.files {
		if _, err := os.Stat(filepath.Join(w.dir, f)); err != nil {
			out = append(out, f)
		}
	}
	if len(out) > 0 {
		return out
	}
	if _, err := tls.LoadX509KeyPair(filepath.Join(w.dir, "tls.crt"), filepath.Join(w.dir, "tls.key")); err != nil {
		out = append(out, "tls.crt and tls.key (not a key pair yet: "+err.Error()+")")
	}
	for _, f := range w.files[2:] { // the client CA
		pem, err := os.ReadFile(filepath.Join(w.dir, f))
		if err != nil || !x509.NewCertPool().AppendCertsFromPEM(pem) {
			out = append(out, f+" (no certificate yet)")
		}
	}
	return out
}
