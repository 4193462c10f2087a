// Package monitoring checks the alerts and the dashboard in
// config/prometheus with Prometheus' own promtool (Debian's prometheus
// package): the rules load, every alert fires when it should and not
// before, every dashboard query parses, and every metric they use is one
// that nodecycle exports.
package monitoring

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/utils/clock"
	"sigs.k8s.io/yaml"

	"github.com/nodecycle/nodecycle/controllers/nodecycle"
	"github.com/nodecycle/nodecycle/internal/agent"
	"github.com/nodecycle/nodecycle/test/framework/localkube"
)

var dir = filepath.Join(localkube.RepoRoot(), "config", "prometheus")

// promtool runs promtool in wd.
func promtool(t *testing.T, wd string, args ...string) {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: install Debian's prometheus package (.ci/run does)")
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = wd
	out, err := cmd.CombinedOutput()
	t.Logf("promtool %s:\n%s", strings.Join(args, " "), out)
	if err != nil {
		t.Fatalf("promtool %s: %v", strings.Join(args, " "), err)
	}
}

type rule struct {
	Alert       string            `json:"alert,omitempty"`
	Record      string            `json:"record,omitempty"`
	Expr        string            `json:"expr"`
	For         string            `json:"for,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type group struct {
	Name  string `json:"name"`
	Rules []rule `json:"rules"`
}

// rules reads the PrometheusRule's groups.
func rules(t *testing.T) []group {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "prometheusrule.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var pr struct {
		Kind string `json:"kind"`
		Spec struct {
			Groups []group `json:"groups"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(b, &pr); err != nil {
		t.Fatal(err)
	}
	if pr.Kind != "PrometheusRule" || len(pr.Spec.Groups) == 0 {
		t.Fatalf("not a PrometheusRule with groups: %s", b)
	}
	return pr.Spec.Groups
}

// writeYAML writes v as YAML into path.
func writeYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestAlerts loads the rules with promtool and runs a unit test of each
// alert: quiet before its time, firing after, with its labels and its
// annotations as rendered.
func TestAlerts(t *testing.T) {
	groups := rules(t)
	wd := t.TempDir()
	writeYAML(t, filepath.Join(wd, "rules.yaml"), map[string]any{"groups": groups})
	promtool(t, wd, "check", "rules", "rules.yaml")

	annotations := map[string]map[string]string{}
	var alerts []string
	for _, g := range groups {
		for _, r := range g.Rules {
			annotations[r.Alert] = r.Annotations
			alerts = append(alerts, r.Alert)
		}
	}
	// rendered is the alert's annotations with the template expressions
	// replaced by what promtool renders for this test's series.
	rendered := func(alert string, oldnew ...string) map[string]string {
		out := map[string]string{}
		r := strings.NewReplacer(oldnew...)
		for k, v := range annotations[alert] {
			out[k] = r.Replace(v)
		}
		return out
	}
	agentA := []string{"{{ $labels.pod }}", "nodecycle-agent-a", "{{ $labels.instance }}", "10.0.0.1:8080"}
	type expAlert struct {
		ExpLabels      map[string]string `json:"exp_labels"`
		ExpAnnotations map[string]string `json:"exp_annotations"`
	}
	type alertTest struct {
		EvalTime  string     `json:"eval_time"`
		Alertname string     `json:"alertname"`
		ExpAlerts []expAlert `json:"exp_alerts"`
	}
	type series struct {
		Series string `json:"series"`
		Values string `json:"values"`
	}
	type unitTest struct {
		Interval       string      `json:"interval"`
		InputSeries    []series    `json:"input_series"`
		AlertRuleTests []alertTest `json:"alert_rule_test"`
	}
	none := []expAlert{}
	tests := []unitTest{
		{Interval: "4m", InputSeries: []series{ // within the 5 m lookback: no gap
			{`nodecycle_agent_reboot_required{pod="nodecycle-agent-a",instance="10.0.0.1:8080"}`, "1x400"},
			{`nodecycle_agent_reboot_required{pod="nodecycle-agent-b",instance="10.0.0.2:8080"}`, "0x400"},
		}, AlertRuleTests: []alertTest{
			{"23h", "NodeCycleRebootPendingTooLong", none},
			{"25h", "NodeCycleRebootPendingTooLong", []expAlert{{
				map[string]string{"severity": "warning", "pod": "nodecycle-agent-a", "instance": "10.0.0.1:8080"},
				rendered("NodeCycleRebootPendingTooLong", agentA...)}}},
		}},
		{Interval: "1m", InputSeries: []series{
			{`nodecycle_operations_total{strategy="reboot",result="Failed"}`, "0 0 0 1 1 1"},
			{`nodecycle_operations_total{strategy="reboot",result="Succeeded"}`, "0 1 2 3 4 5"},
		}, AlertRuleTests: []alertTest{
			{"2m", "NodeCycleFailed", none},
			{"4m", "NodeCycleFailed", []expAlert{{
				map[string]string{"severity": "warning", "strategy": "reboot", "result": "Failed"},
				rendered("NodeCycleFailed", "{{ $labels.strategy }}", "reboot")}}},
		}},
		{Interval: "1m", InputSeries: []series{
			{`nodecycle_nodes_quarantined{cluster="default/prod"}`, "0 0 2 2 2 2"},
		}, AlertRuleTests: []alertTest{
			{"2m", "NodeCycleNodeQuarantined", none},
			{"4m", "NodeCycleNodeQuarantined", []expAlert{{
				map[string]string{"severity": "warning", "cluster": "default/prod"},
				rendered("NodeCycleNodeQuarantined", "{{ $value }}", "2", "{{ $labels.cluster }}", "default/prod")}}},
		}},
		{Interval: "1m", InputSeries: []series{
			{`nodecycle_nodes_skipped{cluster="default/prod"}`, "0 0 1 1 1 1"},
		}, AlertRuleTests: []alertTest{
			{"2m", "NodeCycleNodeSkipped", none},
			{"4m", "NodeCycleNodeSkipped", []expAlert{{
				map[string]string{"severity": "warning", "cluster": "default/prod"},
				rendered("NodeCycleNodeSkipped", "{{ $value }}", "1", "{{ $labels.cluster }}", "default/prod")}}},
		}},
		{Interval: "1m", InputSeries: []series{
			{`nodecycle_agent_reboot_required{pod="nodecycle-agent-a",instance="10.0.0.1:8080"}`, "-1x30"},
		}, AlertRuleTests: []alertTest{
			{"10m", "NodeCycleAgentCheckFailing", none},
			{"20m", "NodeCycleAgentCheckFailing", []expAlert{{
				map[string]string{"severity": "warning", "pod": "nodecycle-agent-a", "instance": "10.0.0.1:8080"},
				rendered("NodeCycleAgentCheckFailing", agentA...)}}},
		}},
		{Interval: "1m", InputSeries: []series{
			{`leader_election_master_status{name="nodecycle-manager.nodecycle.io",pod="manager-1"}`, "1x20 0x20"},
		}, AlertRuleTests: []alertTest{
			{"25m", "NodeCycleManagerNotLeading", none},
			{"35m", "NodeCycleManagerNotLeading", []expAlert{{
				map[string]string{"severity": "critical"}, rendered("NodeCycleManagerNotLeading")}}},
		}},
		{Interval: "1m", InputSeries: []series{
			{`up{job="other"}`, "1x20"},
		}, AlertRuleTests: []alertTest{
			{"5m", "NodeCycleManagerNotLeading", none},
			{"15m", "NodeCycleManagerNotLeading", []expAlert{{
				map[string]string{"severity": "critical", "name": "nodecycle-manager.nodecycle.io"}, rendered("NodeCycleManagerNotLeading")}}},
		}},
	}
	for _, a := range alerts {
		if !slices.ContainsFunc(tests, func(u unitTest) bool {
			return slices.ContainsFunc(u.AlertRuleTests, func(at alertTest) bool { return at.Alertname == a && len(at.ExpAlerts) > 0 })
		}) {
			t.Errorf("alert %s has no unit test here", a)
		}
	}
	writeYAML(t, filepath.Join(wd, "tests.yaml"), map[string]any{"rule_files": []string{"rules.yaml"}, "evaluation_interval": "1m", "tests": tests})
	promtool(t, wd, "test", "rules", "tests.yaml")
}

// TestDashboard: every query of the dashboard parses (promtool checks it
// as a recording rule).
func TestDashboard(t *testing.T) {
	exprs := dashboardExprs(t)
	var rs []rule
	for i, e := range exprs {
		rs = append(rs, rule{Record: fmt.Sprintf("dashboard:query_%d", i), Expr: e})
	}
	wd := t.TempDir()
	writeYAML(t, filepath.Join(wd, "queries.yaml"), map[string]any{"groups": []group{{Name: "dashboard", Rules: rs}}})
	promtool(t, wd, "check", "rules", "queries.yaml")
}

func dashboardExprs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("dashboard.json: %v", err)
	}
	var out []string
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			out = append(out, q.Expr)
		}
	}
	if d.UID == "" || len(out) == 0 {
		t.Fatal("dashboard.json has no uid or no queries")
	}
	return out
}

// collectors is a Registerer that keeps what is registered.
type collectors []prometheus.Collector

func (c *collectors) Register(x prometheus.Collector) error { *c = append(*c, x); return nil }
func (c *collectors) MustRegister(xs ...prometheus.Collector) {
	for _, x := range xs {
		_ = c.Register(x)
	}
}
func (c *collectors) Unregister(prometheus.Collector) bool { return false }

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)
var metricName = regexp.MustCompile(`\b(nodecycle_[a-z_]+|leader_election_master_status)\b`)

// TestMetricNames: the rules and the dashboard use only metrics that the
// manager and the agent export.
func TestMetricNames(t *testing.T) {
	var cs collectors
	nodecycle.NewMetrics(&cs, nil)
	nodecycle.RegisterGateMetrics(&cs, nil, nil, clock.RealClock{})
	agent.NewMetrics(&cs)
	exported := map[string]bool{"leader_election_master_status": true} // controller-runtime's, with leader election
	for _, c := range cs {
		ch := make(chan *prometheus.Desc, 10)
		c.Describe(ch)
		close(ch)
		for d := range ch {
			if m := fqName.FindStringSubmatch(d.String()); m != nil {
				exported[m[1]] = true
			}
		}
	}
	if !exported["nodecycle_operations_total"] || !exported["nodecycle_agent_reboot_required"] || !exported["nodecycle_nodes_quarantined"] {
		t.Fatalf("the manager's and the agent's metrics were not found: %v", exported)
	}
	used := dashboardExprs(t)
	for _, g := range rules(t) {
		for _, r := range g.Rules {
			used = append(used, r.Expr)
		}
	}
	for _, e := range used {
		for _, m := range metricName.FindAllString(e, -1) {
			base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_sum"), "_count")
			if !exported[base] {
				t.Errorf("%q uses %s, which nodecycle does not export", e, m)
			}
		}
	}
}
