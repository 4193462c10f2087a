package peers

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Prometheus is Debian's prometheus on a loopback port, scraping every
// second an exporter of the test's own gauges.
type Prometheus struct {
	URL string
	// Gauge is the exporter's test_gauge{series=...}, for the test to set.
	Gauge    *prometheus.GaugeVec
	exporter *httptest.Server
	cmd      *exec.Cmd
	dir      string
}

// StartPrometheus starts the exporter and Prometheus, and returns once
// Prometheus has scraped the exporter.
func StartPrometheus() (*Prometheus, error) {
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		return nil, fmt.Errorf("prometheus not found: install Debian's prometheus (.ci/run does): %w", err)
	}
	reg := prometheus.NewRegistry()
	p := &Prometheus{Gauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "test_gauge", Help: "A value the test sets."}, []string{"series"})}
	reg.MustRegister(p.Gauge)
	p.exporter = httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	if p.dir, err = os.MkdirTemp("", "nodecycle-prometheus-"); err != nil {
		p.Stop()
		return nil, err
	}
	cfg := filepath.Join(p.dir, "prometheus.yml")
	target := p.exporter.Listener.Addr().String()
	if err = os.WriteFile(cfg, []byte(fmt.Sprintf("global:\n  scrape_interval: 1s\nscrape_configs:\n- job_name: exporter\n  static_configs:\n  - targets: [%q]\n", target)), 0o600); err != nil {
		p.Stop()
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		p.Stop()
		return nil, err
	}
	addr := l.Addr().String()
	_ = l.Close()
	p.URL = "http://" + addr
	p.cmd = exec.Command(bin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(p.dir, "data"), "--web.listen-address="+addr)
	logf, _ := os.Create(filepath.Join(p.dir, "prometheus.log"))
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		p.Stop()
		return nil, err
	}
	// Ready, and the exporter scraped: up{job="exporter"} is 1.
	for deadline := time.Now().Add(30 * time.Second); ; {
		resp, err := http.Get(p.URL + `/api/v1/query?query=up{job="exporter"}==1`)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && bytes.Contains(body, []byte(`"value":`)) {
				return p, nil
			}
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(p.dir, "prometheus.log"))
			p.Stop()
			return nil, fmt.Errorf("prometheus did not scrape the exporter within 30s on %s: %s", addr, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop ends Prometheus and the exporter and removes their files.
func (p *Prometheus) Stop() {
	if p.cmd != nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
	}
	if p.exporter != nil {
		p.exporter.Close()
	}
	if p.dir != "" {
		_ = os.RemoveAll(p.dir)
	}
}
