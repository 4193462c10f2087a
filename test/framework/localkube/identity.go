package localkube

import (
	"context"
	"fmt"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
)

// As is a client configuration for a service account as a component that
// runs with it holds it: a bound token from the TokenRequest API, with no
// other credential. Bound to a Pod on node (node not empty) the token
// carries the node's name, as a DaemonSet pod's does
// (authentication.kubernetes.io/node-name), so admission policies that
// compare it see what they see in a cluster; the Pod is made here, in
// namespace, owned by owner (its DaemonSet, so that a drain leaves it, as
// it leaves a DaemonSet's pods), and never runs.
func As(ctx context.Context, admin *rest.Config, namespace, serviceAccount, node string, owner *metav1.OwnerReference) (*rest.Config, error) {
	cs, err := kubernetes.NewForConfig(admin)
	if err != nil {
		return nil, err
	}
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(3600))}}
	if node != "" {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: serviceAccount + "-" + node},
			Spec: corev1.PodSpec{ServiceAccountName: serviceAccount, NodeName: node,
				Containers: []corev1.Container{{Name: "c", Image: "nodecycle.test/none"}}},
		}
		if owner != nil {
			pod.OwnerReferences = []metav1.OwnerReference{*owner}
		}
		if pod, err = cs.CoreV1().Pods(namespace).Create(ctx, pod, metav1.CreateOptions{}); apierrors.IsAlreadyExists(err) {
			pod, err = cs.CoreV1().Pods(namespace).Get(ctx, serviceAccount+"-"+node, metav1.GetOptions{})
		}
		if err != nil {
			return nil, fmt.Errorf("the pod of %s/%s on %s: %w", namespace, serviceAccount, node, err)
		}
		req.Spec.BoundObjectRef = &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID}
	}
	tr, err := cs.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, serviceAccount, req, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("a token of %s/%s: %w", namespace, serviceAccount, err)
	}
	return &rest.Config{Host: admin.Host, TLSClientConfig: rest.TLSClientConfig{CAData: admin.CAData, CAFile: admin.CAFile},
		BearerToken: tr.Status.Token, QPS: admin.QPS, Burst: admin.Burst}, nil
}
