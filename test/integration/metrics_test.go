package integration

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/nodecycle/nodecycle/test/framework"
)

// Lower: the manager's /metrics is served over HTTPS, to callers whose
// token may get it (ClusterRole nodecycle-metrics-reader), and to nobody
// else.
var _ = Describe("The manager's metrics endpoint", func() {
	It("answers only a caller allowed to get /metrics", func() {
		ctx := context.Background()
		addr := freeAddr()
		stop, _, err := framework.StartManager(env.Config, GinkgoWriter, "--namespace=metrics", "--node-selector=nodecycle.test/none=1", "--metrics-bind-address="+addr)
		Expect(err).NotTo(HaveOccurred())
		defer func() { Expect(stop()).To(Succeed()) }()

		createNamespace("metrics")
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "metrics", Name: "prometheus"}}
		Expect(env.Client.Create(ctx, sa)).To(Succeed())
		tr, err := env.Clientset.CoreV1().ServiceAccounts("metrics").CreateToken(ctx, "prometheus",
			&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(600))}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())

		// The certificate is the manager's own, made at start.
		httpc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // a test of authorization, not of the certificate
		get := func(token string) func() (int, error) {
			return func() (int, error) {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+"/metrics", nil)
				if token != "" {
					req.Header.Set("Authorization", "Bearer "+token)
				}
				resp, err := httpc.Do(req)
				if err != nil {
					return 0, err
				}
				defer resp.Body.Close()
				_, _ = io.Copy(io.Discard, resp.Body)
				return resp.StatusCode, nil
			}
		}
		Eventually(get("")).Should(Equal(http.StatusUnauthorized), "no token")
		Eventually(get(tr.Status.Token)).Should(Equal(http.StatusForbidden), "a token without the role")

		reader := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "nodecycle-metrics-reader"},
			Rules: []rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}}}
		if err := env.Client.Create(ctx, reader); err != nil && !apierrors.IsAlreadyExists(err) {
			Fail(fmt.Sprintf("creating the reader role: %v", err))
		}
		Expect(env.Client.Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "metrics-prometheus"},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "nodecycle-metrics-reader"},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: "metrics", Name: "prometheus"}}})).To(Succeed())
		Eventually(get(tr.Status.Token)).Should(Equal(http.StatusOK), "a token with the role")
	})
})
