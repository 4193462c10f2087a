package gates

import (
	"context"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/test/framework/peers"
)

func TestBlockingAlertsAgainstAlertmanager(t *testing.T) {
	am, err := peers.StartAlertmanager()
	if err != nil {
		t.Fatal(err)
	}
	defer am.Stop()
	ctx := context.Background()
	critical := &v1alpha1.AlertGate{AlertmanagerURL: am.URL, Matchers: []string{`severity="critical"`}}

	if names, alertsErr := BlockingAlerts(ctx, http.DefaultClient, critical); alertsErr != nil || len(names) != 0 {
		t.Fatalf("no alerts yet: %v %v", names, alertsErr)
	}
	if err = am.Fire(map[string]string{"alertname": "DiskFull", "severity": "warning"}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err = am.Fire(map[string]string{"alertname": "NodeDown", "severity": "critical"}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	// Alertmanager takes in posted alerts asynchronously.
	var names []string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if names, err = BlockingAlerts(ctx, http.DefaultClient, critical); err == nil && len(names) > 0 {
			break
		}
	}
	if !reflect.DeepEqual(names, []string{"NodeDown"}) {
		t.Fatalf("blocking alerts %v (%v), want [NodeDown]", names, err)
	}
	all, err := BlockingAlerts(ctx, http.DefaultClient, &v1alpha1.AlertGate{AlertmanagerURL: am.URL})
	if err != nil || !reflect.DeepEqual(all, []string{"DiskFull", "NodeDown"}) {
		t.Fatalf("without matchers every alert blocks: %v %v", all, err)
	}

	_, err = BlockingAlerts(ctx, http.DefaultClient, &v1alpha1.AlertGate{AlertmanagerURL: am.URL, Matchers: []string{`severity=="`}})
	if err == nil || !strings.Contains(err.Error(), "check the matchers") {
		t.Fatalf("a malformed matcher: %v", err)
	}
	am.Stop()
	if _, err := BlockingAlerts(ctx, http.DefaultClient, critical); err == nil || !strings.Contains(err.Error(), "asking Alertmanager") {
		t.Fatalf("an unreachable Alertmanager must be an error: %v", err)
	}
}
