// Package kubectlplugin is the kubectl plugin kubectl-nodecycle: on-demand
// requests (request), what nodecycle does (status), and pause and resume.
// It only creates NodeCycles and writes the nodecycle.io/paused
// annotation; the manager validates and carries out the rest.
package kubectlplugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/pflag"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/printable"
)

// Connect makes the client of the cluster kubeconfig and context name ("":
// the defaults, as kubectl finds them).
type Connect func(kubeconfig, context string) (client.Client, error)

// Usage is the plugin's help.
const Usage = `kubectl nodecycle: ask nodecycle for maintenance, and see and pause it.

  kubectl nodecycle request NODE [--strategy reboot|power-cycle|replace] [--reason TEXT] [--cluster NAME]
      Reboot, power-cycle or (Cluster API) replace NODE now, through the same
      gates, slots and proof of reboot as an automatic maintenance. The manager
      refuses a node that does not exist or is excluded, and a strategy the
      node's policy does not allow; the refusal is printed.
  kubectl nodecycle status [NODE]
      The pauses in force and the NodeCycles (of NODE), newest first.
  kubectl nodecycle pause --reason TEXT [--policy NAME | --cluster NAME]
      Hold new maintenance: all of nodecycle (the manager's namespace), one
      policy's nodes, or one Cluster API cluster. Maintenance under way finishes.
  kubectl nodecycle resume [--policy NAME | --cluster NAME]
      Lift that pause.

Flags of every command:
  -n, --namespace   the namespace of the NodeCycles: the manager's (default
                    nodecycle-system), or in Cluster API mode the Cluster's
      --kubeconfig, --context   as for kubectl
`

// Run runs the plugin with args (without the program name), writing to out.
func Run(ctx context.Context, args []string, out io.Writer, connect Connect) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		_, err := io.WriteString(out, Usage)
		return err
	}
	cmd, args := args[0], args[1:]
	fs := pflag.NewFlagSet("kubectl nodecycle "+cmd, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var o options
	fs.StringVarP(&o.namespace, "namespace", "n", "nodecycle-system", "")
	kubeconfig := fs.String("kubeconfig", "", "")
	kubeContext := fs.String("context", "", "")
	switch cmd {
	case "request":
		fs.StringVar(&o.strategy, "strategy", "", "")
		fs.StringVar(&o.reason, "reason", "", "")
		fs.StringVar(&o.cluster, "cluster", "", "")
		fs.DurationVar(&o.wait, "wait", 30*time.Second, "")
	case "status":
	case "pause":
		fs.StringVar(&o.reason, "reason", "", "")
		fallthrough
	case "resume":
		fs.StringVar(&o.policy, "policy", "", "")
		fs.StringVar(&o.cluster, "cluster", "", "")
	default:
		return fmt.Errorf("unknown command %q; kubectl nodecycle help lists them", cmd)
	}
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	o.args = fs.Args()
	if err := o.validate(cmd); err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	c, err := connect(*kubeconfig, *kubeContext)
	if err != nil {
		return err
	}
	p := &plugin{c: c, out: out, o: o}
	switch cmd {
	case "request":
		return p.request(ctx)
	case "status":
		return p.status(ctx)
	case "pause":
		return p.setPause(ctx, true)
	default:
		return p.setPause(ctx, false)
	}
}

type options struct {
	namespace, strategy, reason, cluster, policy string
	wait                                         time.Duration
	args                                         []string
}

// validate checks what can be checked without the cluster.
func (o *options) validate(cmd string) error {
	var errs []error
	switch cmd {
	case "request":
		if len(o.args) != 1 {
			errs = append(errs, fmt.Errorf("want exactly one node name, got %d arguments", len(o.args)))
		} else if msgs := validation.IsDNS1123Subdomain(o.args[0]); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("%q is not a node name: %s", o.args[0], strings.Join(msgs, "; ")))
		}
		if o.strategy != "" {
			if _, err := v1alpha1.ParseStrategies(o.strategy); err != nil || strings.Contains(o.strategy, ",") {
				errs = append(errs, fmt.Errorf("--strategy %q: want one of reboot, power-cycle, replace", o.strategy))
			}
		}
		if len(o.reason) > 256 {
			errs = append(errs, fmt.Errorf("--reason is %d characters long; at most 256", len(o.reason)))
		}
		if o.wait < 0 {
			errs = append(errs, fmt.Errorf("--wait must not be negative"))
		}
	case "status":
		if len(o.args) > 1 {
			errs = append(errs, fmt.Errorf("want at most one node name, got %d arguments", len(o.args)))
		}
	default:
		if len(o.args) > 0 {
			errs = append(errs, fmt.Errorf("unexpected arguments %v", o.args))
		}
		if o.policy != "" && o.cluster != "" {
			errs = append(errs, errors.New("--policy and --cluster exclude each other"))
		}
		if cmd == "pause" && strings.TrimSpace(o.reason) == "" {
			errs = append(errs, errors.New("--reason is required: the NodeCycles that wait say who paused and why"))
		}
	}
	return errors.Join(errs...)
}

type plugin struct {
	c   client.Client
	out io.Writer
	o   options
}

// request creates an on-demand NodeCycle and waits (--wait) until the
// manager accepts or refuses it.
func (p *plugin) request(ctx context.Context) error {
	node := p.o.args[0]
	prefix := node
	if p.o.cluster != "" {
		prefix = p.o.cluster + "-" + node
	}
	nc := &v1alpha1.NodeCycle{
		ObjectMeta: metav1.ObjectMeta{GenerateName: truncate(prefix, 50) + "-request-", Namespace: p.o.namespace},
		Spec: v1alpha1.NodeCycleSpec{
			NodeName:    node,
			ClusterName: p.o.cluster,
			Request: &v1alpha1.RequestSpec{
				Strategy:    v1alpha1.Strategy(p.o.strategy),
				Reason:      p.o.reason,
				RequestedBy: p.who(ctx),
			},
		},
	}
	if err := p.c.Create(ctx, nc); err != nil {
		return fmt.Errorf("creating the request: %w", err)
	}
	fmt.Fprintf(p.out, "nodecycle.nodecycle.io/%s created in namespace %s\n", nc.Name, nc.Namespace)
	if p.o.wait == 0 {
		return nil
	}
	deadline := time.Now().Add(p.o.wait)
	for {
		if err := p.c.Get(ctx, client.ObjectKeyFromObject(nc), nc); err != nil {
			return fmt.Errorf("reading the request: %w", err)
		}
		switch {
		case nc.Status.Reason == v1alpha1.ReasonRequestRefused:
			return fmt.Errorf("refused: %s", printable.String(strings.TrimPrefix(nc.Status.Message, "Request refused: ")))
		case !nc.Spec.Unresolved():
			fmt.Fprintf(p.out, "accepted: strategy %s; follow it with kubectl get nodecycle -n %s %s -w\n", ladder(nc.Spec.Strategies), nc.Namespace, nc.Name)
			return nil
		case time.Now().After(deadline):
			return fmt.Errorf("the manager did not answer within %s (is it running, and does it serve namespace %s?); the request stays and is answered when it does", p.o.wait, nc.Namespace)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// who is the user the API server knows the plugin as; "" when it does not say.
func (p *plugin) who(ctx context.Context) string {
	review := &authenticationv1.SelfSubjectReview{}
	if err := p.c.Create(ctx, review); err != nil {
		return ""
	}
	return review.Status.UserInfo.Username
}

// setPause writes (pause) or removes (resume) nodecycle.io/paused on the
// namespace, a policy or a Cluster.
func (p *plugin) setPause(ctx context.Context, pause bool) error {
	var obj client.Object
	var what string
	switch {
	case p.o.policy != "":
		obj, what = &v1alpha1.NodeCyclePolicy{}, "NodeCyclePolicy "+p.o.policy
		obj.SetName(p.o.policy)
		obj.SetNamespace(p.o.namespace)
	case p.o.cluster != "":
		obj, what = &clusterv1.Cluster{}, "Cluster "+p.o.cluster
		obj.SetName(p.o.cluster)
		obj.SetNamespace(p.o.namespace)
	default:
		obj, what = &corev1.Namespace{}, "namespace "+p.o.namespace
		obj.SetName(p.o.namespace)
	}
	if err := p.c.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("%s does not exist", what)
		}
		return fmt.Errorf("reading %s: %w", what, err)
	}
	var value any // JSON null removes the annotation
	if pause {
		who := p.who(ctx)
		if who == "" {
			who = "someone"
		}
		value = who + ": " + p.o.reason
	}
	patch := map[string]any{"metadata": map[string]any{"annotations": map[string]any{v1alpha1.AnnotationPaused: value}}}
	if err := p.c.Patch(ctx, obj, client.RawPatch("application/merge-patch+json", mustJSON(patch))); err != nil {
		return fmt.Errorf("annotating %s: %w", what, err)
	}
	if pause {
		fmt.Fprintf(p.out, "paused: %s (%s=%q); maintenance under way finishes, none starts\n", what, v1alpha1.AnnotationPaused, value)
	} else {
		fmt.Fprintf(p.out, "resumed: %s\n", what)
	}
	return nil
}

func ladder(s []v1alpha1.Strategy) string {
	parts := make([]string, len(s))
	for i, x := range s {
		parts[i] = string(x)
	}
	return strings.Join(parts, ",")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.TrimRight(s[:n], "-.")
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // maps of strings always marshal
	}
	return b
}

// Scheme holds the kinds the plugin reads and writes.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(v1alpha1.AddToScheme(s))
	utilruntime.Must(clusterv1.AddToScheme(s))
	return s
}
