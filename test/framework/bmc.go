package framework

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/powersettings"
	"github.com/nodecycle/nodecycle/power/ipmi"
	"github.com/nodecycle/nodecycle/test/framework/peers"
)

// LendBMC puts the BMC's credentials in the manager's namespace, lent to
// ns, and a policy in ns naming the BMC for node.
func LendBMC(ctx context.Context, c client.Client, ns, node string, bmc *peers.BMC) error {
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "nodecycle-system"}}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	if err := c.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: ns + "-bmc", Namespace: "nodecycle-system", Annotations: map[string]string{powersettings.AnnotationCredentialsFor: ns}},
		// The operator lends it for this BMC only.
		Data: map[string][]byte{"username": []byte(bmc.Username), "password": []byte(bmc.Password), powersettings.SecretKeyMachines: []byte(bmc.Addr), powersettings.SecretKeyProvider: []byte(ipmi.Name)},
	}); err != nil {
		return err
	}
	return c.Create(ctx, &v1alpha1.NodeCyclePolicy{ObjectMeta: metav1.ObjectMeta{Name: "bmc", Namespace: ns},
		Spec: v1alpha1.NodeCyclePolicySpec{PowerCycle: &v1alpha1.PowerCycleSpec{
			Provider: ipmi.Name, Machines: map[string]string{node: bmc.Addr}, CredentialsSecretRef: &v1alpha1.SecretReference{Name: ns + "-bmc"},
			SoftOffTimeout: v1alpha1.NewDuration(time.Second), PowerTimeout: v1alpha1.NewDuration(time.Minute),
		}}})
}
