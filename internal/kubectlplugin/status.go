package kubectlplugin

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/gates"
	"github.com/nodecycle/nodecycle/internal/printable"
)

// status prints the pauses in force and the NodeCycles, newest first.
func (p *plugin) status(ctx context.Context) error {
	pauses, err := p.pauses(ctx)
	if err != nil {
		return err
	}
	if len(pauses) == 0 {
		fmt.Fprintln(p.out, "Paused: no")
	}
	for _, s := range pauses {
		fmt.Fprintf(p.out, "Paused: %s\n", printable.String(s))
	}
	frozen, err := p.frozen(ctx, time.Now())
	if err != nil {
		return err
	}
	for _, s := range frozen {
		fmt.Fprintf(p.out, "Frozen: %s\n", printable.String(s))
	}
	var list v1alpha1.NodeCycleList
	if err := p.c.List(ctx, &list, client.InNamespace(p.o.namespace)); err != nil {
		return fmt.Errorf("listing NodeCycles in namespace %s: %w", p.o.namespace, err)
	}
	items := list.Items[:0]
	for _, nc := range list.Items {
		if len(p.o.args) == 0 || nc.Spec.NodeName == p.o.args[0] {
			items = append(items, nc)
		}
	}
	sort.SliceStable(items, func(i, j int) bool {
		return items[j].CreationTimestamp.Before(&items[i].CreationTimestamp)
	})
	fmt.Fprintln(p.out)
	if len(items) == 0 {
		fmt.Fprintf(p.out, "No NodeCycles in namespace %s.\n", p.o.namespace)
		return nil
	}
	tw := tabwriter.NewWriter(p.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tNODE\tCLUSTER\tSTRATEGY\tPHASE\tAGE\tREQUESTED BY\tMESSAGE")
	for _, nc := range items {
		by := "-"
		if r := nc.Spec.Request; r != nil {
			by = r.RequestedBy
			if by == "" {
				by = "(someone)"
			}
		}
		// Every field may hold what someone wrote: shown escaped.
		fields := []string{nc.Name, nc.Spec.NodeName, dash(nc.Spec.ClusterName), dash(string(nc.Status.Strategy)),
			dash(string(nc.Status.Phase)), duration.HumanDuration(time.Since(nc.CreationTimestamp.Time)), by, nc.Status.Message}
		for i := range fields {
			fields[i] = printable.String(fields[i])
		}
		fmt.Fprintln(tw, strings.Join(fields, "\t"))
	}
	return tw.Flush()
}

// frozen lists the policies of the namespace in a freeze now: until when
// and why. (The manager's own --freeze shows in its NodeCycles' messages.)
func (p *plugin) frozen(ctx context.Context, now time.Time) ([]string, error) {
	var policies v1alpha1.NodeCyclePolicyList
	if err := p.c.List(ctx, &policies, client.InNamespace(p.o.namespace)); err != nil {
		return nil, fmt.Errorf("listing NodeCyclePolicies: %w", err)
	}
	var out []string
	for _, pol := range policies.Items {
		switch frozen, until, why, err := gates.Frozen(pol.Spec.Freezes, now); {
		case err != nil:
			out = append(out, fmt.Sprintf("NodeCyclePolicy %s: invalid freeze, its NodeCycles fail: %v", pol.Name, err))
		case frozen:
			out = append(out, fmt.Sprintf("NodeCyclePolicy %s: frozen until %s: %s", pol.Name, until.UTC().Format(time.RFC3339), why))
		}
	}
	return out, nil
}

// pauses lists the pauses that hold NodeCycles of the namespace: its own
// (all of nodecycle when it is the manager's), its policies' and its
// Clusters'.
func (p *plugin) pauses(ctx context.Context) ([]string, error) {
	var out []string
	ns := &corev1.Namespace{}
	if err := p.c.Get(ctx, client.ObjectKey{Name: p.o.namespace}, ns); err != nil {
		return nil, fmt.Errorf("reading namespace %s: %w", p.o.namespace, err)
	}
	if why, ok := ns.Annotations[v1alpha1.AnnotationPaused]; ok {
		out = append(out, fmt.Sprintf("namespace %s (all of nodecycle, when the manager's): %s", ns.Name, why))
	}
	var policies v1alpha1.NodeCyclePolicyList
	if err := p.c.List(ctx, &policies, client.InNamespace(p.o.namespace)); err != nil {
		return nil, fmt.Errorf("listing NodeCyclePolicies: %w", err)
	}
	for _, pol := range policies.Items {
		if why, ok := pol.Annotations[v1alpha1.AnnotationPaused]; ok {
			out = append(out, fmt.Sprintf("NodeCyclePolicy %s: %s", pol.Name, why))
		}
	}
	var clusters clusterv1.ClusterList
	if err := p.c.List(ctx, &clusters, client.InNamespace(p.o.namespace)); err == nil {
		for _, cl := range clusters.Items {
			if why, ok := cl.Annotations[v1alpha1.AnnotationPaused]; ok {
				out = append(out, fmt.Sprintf("Cluster %s: %s", cl.Name, why))
			}
		}
	} // no Cluster API: no Clusters to pause
	return out, nil
}
