package framework

import (
	"context"
	"time"

	"github.com/google/uuid"
	"k8s.io/client-go/kubernetes"

	"github.com/nodecycle/nodecycle/test/framework/sim"
)

// PowerKubelet plays the kubelet of a node whose machine is power-cycled
// through a real provider peer. It asks the peer itself whether the machine
// is on and which boot it runs (the VM's boot time, the BMC's count of
// power-ons), reports the node NotReady while the machine is off, and a new
// boot ID and Ready once the peer shows a new boot.
type PowerKubelet struct {
	Client kubernetes.Interface
	Node   string
	// Observe reads the machine from the peer.
	Observe func(ctx context.Context) (on bool, boot string, err error)
	// OnBoot runs when the machine has booted again (the agent's sentinel
	// is gone after a reboot, say).
	OnBoot func()
	// InFlight records the machine's reboots while they happen (optional).
	InFlight *sim.InFlight
}

// Run follows the machine until ctx ends.
func (k *PowerKubelet) Run(ctx context.Context) {
	wasOn, lastBoot, err := k.Observe(ctx)
	for err != nil && ctx.Err() == nil {
		time.Sleep(100 * time.Millisecond)
		wasOn, lastBoot, err = k.Observe(ctx)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
		on, boot, err := k.Observe(ctx)
		if err != nil {
			continue
		}
		switch {
		case !on && wasOn:
			if k.InFlight != nil {
				k.InFlight.Begin(k.Node)
			}
			_ = sim.SetNodeStatus(ctx, k.Client, k.Node, "", false)
		case on && boot != lastBoot:
			if k.OnBoot != nil {
				k.OnBoot()
			}
			if k.InFlight != nil {
				k.InFlight.Begin(k.Node) // a reset: down and up between two looks
				k.InFlight.End(k.Node)
			}
			_ = sim.SetNodeStatus(ctx, k.Client, k.Node, uuid.NewString(), true)
			lastBoot = boot
		}
		wasOn = on
	}
}
