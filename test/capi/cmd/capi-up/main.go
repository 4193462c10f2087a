// Command capi-up makes what a Cluster API user has after trying nodecycle:
// a kind management cluster initialised by clusterctl with Cluster API's
// providers, cert-manager and nodecycle as an addon provider, and a CAPD
// workload cluster of real kubelets (one control plane, two workers whose
// MachineDeployment opts in to reboots) running the sample workload. It
// stays in the foreground, serving the Docker API proxy CAPD reaches the
// engine through, until interrupted; then it deletes everything (make capi).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/nodecycle/nodecycle/test/capi"
	"github.com/nodecycle/nodecycle/test/framework/localkube"
	"github.com/nodecycle/nodecycle/test/kind"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run() error {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	setup, cancelSetup := context.WithTimeout(ctx, 30*time.Minute)
	defer cancelSetup()
	m, err := capi.Up(setup, "nodecycle-capi", os.Stdout)
	if err != nil {
		return err
	}
	defer m.Delete()
	if _, err = m.Kubectl(setup, "create", "rolebinding", "nodecycle-manager", "-n", "default",
		"--clusterrole", "nodecycle-manager-namespace", "--serviceaccount", "nodecycle-system:nodecycle-manager"); err != nil {
		return err
	}
	w, err := m.CreateWorkload(setup, capi.WorkloadSpec{Name: "work", Workers: 2, Strategy: "reboot"}, 15*time.Minute)
	if err != nil {
		return err
	}
	if err := w.DeploySample(setup); err != nil {
		return err
	}
	mgmt := filepath.Join(os.TempDir(), "nodecycle-capi.kubeconfig")
	workload := filepath.Join(os.TempDir(), "nodecycle-capi-work.kubeconfig")
	for from, to := range map[string]string{m.Kubeconfig: mgmt, w.Kubeconfig: workload} {
		data, err := os.ReadFile(from)
		if err == nil {
			err = os.WriteFile(to, data, 0o600)
		}
		if err != nil {
			return err
		}
	}
	fmt.Printf(`
The management cluster %[1]s runs Cluster API, cert-manager and nodecycle
(installed by clusterctl); the workload cluster work has one control plane
and two workers (MachineDeployment work-md-0, nodecycle.io/strategy=reboot).

  %[2]s --kubeconfig %[3]s get clusters,machines,nodecycles -A
  docker exec %[4]s touch %[5]s      # a worker needs a reboot
  %[2]s --kubeconfig %[3]s get nodecycles -A -w
  %[2]s --kubeconfig %[6]s get nodes -w
  %[2]s --kubeconfig %[3]s describe machine -l cluster.x-k8s.io/deployment-name=work-md-0
  %[2]s --kubeconfig %[6]s describe node %[4]s

Press Ctrl-C to delete both clusters (CAPD reaches the Docker engine through
this process).
`, m.Name, filepath.Join(localkube.Assets(), "kubectl"), mgmt, w.Workers[0], kind.SentinelPath, workload)
	<-ctx.Done()
	fmt.Println("deleting the clusters")
	return nil
}
