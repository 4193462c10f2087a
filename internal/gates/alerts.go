package gates

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
)

// AlertmanagerAllowed says whether a policy or NodeCycle of namespace may
// have the manager ask the gate's Alertmanager: see URLAllowed.
func AlertmanagerAllowed(g *v1alpha1.AlertGate, namespace, managerNamespace string, allowed []string) error {
	if g == nil {
		return nil
	}
	return URLAllowed("blockingAlerts.alertmanagerURL", g.AlertmanagerURL, "--alertmanager-urls", namespace, managerNamespace, allowed)
}

// URLAllowed says whether a policy or NodeCycle of namespace may have the
// manager ask u (its field): any, in the manager's own namespace (the
// operator's); elsewhere only one of allowed (the manager's flag), so that
// a tenant cannot make the manager request URLs of their choosing inside
// its network and read the status codes back from the NodeCycle's message.
func URLAllowed(field, u, flag, namespace, managerNamespace string, allowed []string) error {
	if namespace == managerNamespace {
		return nil
	}
	want := strings.TrimSuffix(u, "/")
	for _, a := range allowed {
		if strings.TrimSuffix(a, "/") == want {
			return nil
		}
	}
	return fmt.Errorf("%s %s may not be used by namespace %s: the manager's %s allows %s", field, u, namespace, flag, orNone(allowed))
}

func orNone(list []string) string {
	if len(list) == 0 {
		return "none"
	}
	return strings.Join(list, ", ")
}

// noRedirects is the client Alertmanager is asked with: an allowed URL
// does not lead elsewhere.
var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// BlockingAlerts asks Alertmanager (API v2) for active, unsilenced,
// uninhibited alerts matching the gate and returns their names, sorted.
func BlockingAlerts(ctx context.Context, c *http.Client, g *v1alpha1.AlertGate) ([]string, error) {
	if c == nil {
		c = noRedirects
	}
	q := url.Values{"active": {"true"}, "silenced": {"false"}, "inhibited": {"false"}}
	for _, m := range g.Matchers {
		q.Add("filter", m)
	}
	u := strings.TrimSuffix(g.AlertmanagerURL, "/") + "/api/v2/alerts?" + q.Encode()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("Alertmanager %s: %w", g.AlertmanagerURL, err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("asking Alertmanager %s: %w", g.AlertmanagerURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("Alertmanager %s answered %s (check the matchers %q)", g.AlertmanagerURL, resp.Status, g.Matchers)
	}
	var alerts []struct {
		Labels map[string]string `json:"labels"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&alerts); err != nil {
		return nil, fmt.Errorf("Alertmanager %s: reading alerts: %w", g.AlertmanagerURL, err)
	}
	names := make([]string, 0, len(alerts))
	for _, a := range alerts {
		names = append(names, a.Labels["alertname"])
	}
	sort.Strings(names)
	return names, nil
}
