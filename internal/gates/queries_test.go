package gates_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/gates"
	"github.com/nodecycle/nodecycle/test/framework/peers"
)

// Blocking queries asked of a real Prometheus (Debian's) scraping a test
// exporter every second: any sample, a threshold, a `for` that the series'
// history meets or not, a scalar, and a query or server that fails.
func TestBlockingSeriesFromPrometheus(t *testing.T) {
	p, err := peers.StartPrometheus()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	p.Gauge.WithLabelValues("low").Set(0.2)
	p.Gauge.WithLabelValues("high").Set(0.9)
	ctx := context.Background()
	ask := func(query, threshold string, forDur time.Duration) ([]gates.Series, error) {
		g := &v1alpha1.QueryGate{PrometheusURL: p.URL, Query: query, Threshold: threshold}
		if forDur > 0 {
			g.For = &v1alpha1.Duration{Duration: forDur}
		}
		return gates.BlockingSeries(ctx, nil, g, time.Now())
	}
	// Both series scraped for at least 4 s.
	start := time.Now()
	for {
		got, err := ask(`test_gauge`, "", 4*time.Second)
		if err == nil && len(got) == 2 {
			break
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("the exporter's two series were never seen for 4s: %v, %v", got, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	for _, tc := range []struct {
		query, threshold string
		forDur           time.Duration
		want             string
	}{
		{`test_gauge`, "", 0, `[{__name__="test_gauge", instance=` /* and two series */},
		{`test_gauge`, "0.5", 0, `series="high"} 0.9]`},
		{`test_gauge`, "0.5", 3 * time.Second, `series="high"} 0.9]`},
		{`test_gauge`, "0.95", 0, `[]`},
		{`test_gauge`, "", time.Hour, `[]`}, // no hour of history yet
		{`test_gauge{series="none"}`, "", 0, `[]`},
		{`sum(test_gauge)`, "1", 0, `[{} 1.1]`},
		{`2`, "1", 0, `[{} 2]`}, // a scalar
	} {
		got, err := ask(tc.query, tc.threshold, tc.forDur)
		if err != nil {
			t.Fatalf("%s > %q for %s: %v", tc.query, tc.threshold, tc.forDur, err)
		}
		if s := fmt.Sprint(got); !strings.Contains(s, tc.want) || (tc.query == `test_gauge` && tc.threshold == "" && tc.forDur == 0 && len(got) != 2) {
			t.Errorf("%s > %q for %s: %s, want %s", tc.query, tc.threshold, tc.forDur, s, tc.want)
		}
	}
	if _, err := ask(`test_gauge{`, "", 0); err == nil || !strings.Contains(err.Error(), "bad_data") {
		t.Errorf("a query that does not parse: %v, want Prometheus' bad_data", err)
	}
	if _, err := ask(`test_gauge[1m]`, "", time.Minute); err == nil {
		t.Error("a range vector in a query_range was taken")
	}
	url := p.URL
	p.Stop()
	if _, err := gates.BlockingSeries(ctx, nil, &v1alpha1.QueryGate{PrometheusURL: url, Query: "up"}, time.Now()); err == nil || !strings.Contains(err.Error(), url) {
		t.Errorf("a Prometheus that does not answer: %v", err)
	}
}

// What is not a Prometheus answer is an error naming the status.
func TestBlockingSeriesRefusesOtherAnswers(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "<html>bad gateway</html>", http.StatusBadGateway)
	}))
	defer srv.Close()
	_, err := gates.BlockingSeries(context.Background(), nil, &v1alpha1.QueryGate{PrometheusURL: srv.URL, Query: "up"}, time.Now())
	if err == nil || !strings.Contains(err.Error(), "502 Bad Gateway, not a Prometheus query result") {
		t.Fatalf("error %v", err)
	}
}
