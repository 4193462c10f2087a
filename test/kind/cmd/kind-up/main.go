// Command kind-up makes a kind cluster named nodecycle of real kubelets with
// nodecycle installed by its Helm chart and the sample workload running, and
// leaves it running (make kind; make kind-delete removes it).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"time"

	"github.com/nodecycle/nodecycle/test/framework/localkube"
	"github.com/nodecycle/nodecycle/test/kind"
)

func main() {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 20*time.Minute)
	defer cancelTimeout()
	c, err := kind.Up(ctx, "nodecycle", nil, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	kubeconfig := filepath.Join(os.TempDir(), "nodecycle-kind.kubeconfig")
	data, err := os.ReadFile(c.Kubeconfig)
	if err == nil {
		err = os.WriteFile(kubeconfig, data, 0o600)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	kubectl := filepath.Join(localkube.Assets(), "kubectl")
	fmt.Printf(`
kind cluster %[1]s is running with nodecycle installed (namespace %[2]s).

  export KUBECONFIG=%[3]s
  %[4]s get nodes
  docker exec %[5]s touch %[6]s      # worker 1 needs a reboot
  %[4]s get nodecycles -A -w
  %[4]s describe node %[5]s

make kind-delete removes the cluster.
`, c.Name, kind.Namespace, kubeconfig, kubectl, c.Workers[0], kind.SentinelPath)
}
