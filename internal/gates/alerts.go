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

// BlockingAlerts asks Alertmanager (API v2) for active, unsilenced,
// uninhibited alerts matching the gate and returns their names, sorted.
func BlockingAlerts(ctx context.Context, c *http.Client, g *v1alpha1.AlertGate) ([]string, error) {
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
