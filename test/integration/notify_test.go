package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
)

// The manager with --notification-secret: a webhook receives the start and
// the end of a maintenance; a receiver that is down holds nothing up and
// is reported on the node, without its URL.
var _ = Describe("Notifications", func() {
	It("reach a webhook, and a dead receiver is reported, not waited for", func() {
		var mu sync.Mutex
		var got []string
		hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var payload map[string]string
			body, _ := io.ReadAll(r.Body)
			Expect(json.Unmarshal(body, &payload)).To(Succeed(), "%s", body)
			mu.Lock()
			got = append(got, payload["message"])
			mu.Unlock()
		}))
		defer hook.Close()
		received := func() []string {
			mu.Lock()
			defer mu.Unlock()
			return append([]string(nil), got...)
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		Expect(err).NotTo(HaveOccurred())
		dead := l.Addr().String()
		Expect(l.Close()).To(Succeed())

		c := newCluster("notify", 1)
		Expect(env.Client.Create(c.ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: c.name, Name: "receivers"}, StringData: map[string]string{
			"ops":  "generic://" + strings.TrimPrefix(hook.URL, "http://") + "/hook?disabletls=yes&template=json",
			"dead": "generic://" + dead + "/hook?disabletls=yes&token=very-secret-token",
		}})).To(Succeed())
		stop := startManager(c.managerFlags("--notification-secret=receivers",
			"--notification-template={{.Reason}} {{.Name}}: {{.Message}}")...)
		defer stop()
		c.agents[c.node(1)].requireReboot()
		Eventually(c.phases, 2*time.Minute).Should(Equal(map[string][]v1alpha1.Phase{c.node(1): {v1alpha1.PhaseSucceeded}}))
		Eventually(received).Should(ContainElements(
			HavePrefix(fmt.Sprintf("MaintenanceStarted %s: Maintenance started", c.node(1))),
			HavePrefix(fmt.Sprintf("MaintenanceCompleted %s: ", c.node(1)))))
		Expect(received()).To(HaveLen(2), "only the notified reasons")
		Eventually(func() []string { return eventMessages(c.node(1), string(v1alpha1.ReasonNotificationFailed)) }).Should(ContainElement(
			And(ContainSubstring(`receiver "dead"`), ContainSubstring("maintenance goes on"), Not(ContainSubstring("very-secret-token")))))
	})
})
