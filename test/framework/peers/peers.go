// Package peers starts the real systems nodecycle talks to in tests: ipmi_sim, govmomi's vCenter simulator and Alertmanager.
package peers

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
)

// BMC is an ipmi_sim process (Debian's openipmi) serving IPMI 2.0 on a
// loopback UDP port, with user admin / password secret and a chassis whose
// power state lives in a file.
type BMC struct {
	Addr               string
	Username, Password string
	cmd                *exec.Cmd
	dir                string
}

// StartBMC starts ipmi_sim. Stop it with Stop.
func StartBMC() (*BMC, error) {
	bin, err := exec.LookPath("ipmi_sim")
	if err != nil {
		return nil, fmt.Errorf("ipmi_sim not found: install Debian's openipmi (.ci/run does): %w", err)
	}
	dir, err := os.MkdirTemp("", "nodecycle-bmc-")
	if err != nil {
		return nil, err
	}
	port, err := freeUDPPort()
	if err != nil {
		return nil, err
	}
	_, self, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(self), "testdata", "ipmi_chassis_control.sh")
	lan := fmt.Sprintf(`name "nodecycle"
set_working_mc 0x20
  startlan 1
    addr 127.0.0.1 %d
    priv_limit admin
    allowed_auths_callback none md2 md5 straight
    allowed_auths_user none md2 md5 straight
    allowed_auths_operator none md2 md5 straight
    allowed_auths_admin none md2 md5 straight
    guid a123456789abcdefa123456789abcdef
  endlan
  chassis_control "%s %s 0x20"
  user 1 true  ""      "test"   user  10 none md2 md5 straight
  user 2 true  "admin" "secret" admin 10 none md2 md5 straight
`, port, script, dir)
	// mc_enable starts the MC and its LAN channel.
	emu := "mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr\nsel_enable 0x20 1000 0x0a\nmc_enable 0x20\n"
	for name, body := range map[string]string{"lan.conf": lan, "sim.emu": emu} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			return nil, err
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "state"), 0o755); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-n", "-c", filepath.Join(dir, "lan.conf"), "-f", filepath.Join(dir, "sim.emu"), "-s", filepath.Join(dir, "state"))
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	b := &BMC{Addr: fmt.Sprintf("127.0.0.1:%d", port), Username: "admin", Password: "secret", cmd: cmd, dir: dir}
	// ipmi_sim binds its port a moment after it starts. Its socket is
	// looked for in /proc/net/udp: probing by binding the port ourselves
	// could take it from under ipmi_sim, which then never listens.
	for deadline := time.Now().Add(10 * time.Second); ; {
		if udpListening(port) {
			return b, nil
		}
		if time.Now().After(deadline) {
			b.Stop()
			return nil, fmt.Errorf("ipmi_sim did not listen on %s", b.Addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// udpListening says whether a socket is bound to 127.0.0.1:port.
func udpListening(port int) bool {
	table, err := os.ReadFile("/proc/net/udp")
	if err != nil {
		return false
	}
	return strings.Contains(string(table), fmt.Sprintf(" 0100007F:%04X ", port))
}

// Observe reads the chassis as the BMC keeps it: power, and how many
// times it was powered on (the boot).
func (b *BMC) Observe(context.Context) (on bool, boot string, err error) {
	p, err := os.ReadFile(filepath.Join(b.dir, "power"))
	if err != nil {
		return true, "0", nil // never switched: on since start
	}
	n, _ := os.ReadFile(filepath.Join(b.dir, "boots"))
	return strings.TrimSpace(string(p)) == "1", strings.TrimSpace(string(n)), nil
}

// Stop ends ipmi_sim and removes its files.
func (b *BMC) Stop() {
	_ = b.cmd.Process.Kill()
	_ = b.cmd.Wait()
	_ = os.RemoveAll(b.dir)
}

func freeUDPPort() (int, error) {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port, nil
}

// VCenter is govmomi's vCenter simulator (VPX model) on a loopback port.
type VCenter struct {
	// Endpoint is the SDK URL without credentials.
	Endpoint           string
	Username, Password string
	model              *simulator.Model
	server             *simulator.Server

	mu     sync.Mutex
	client *govmomi.Client
}

// StartVCenter starts the simulator with credentials of its own (its
// default login would accept any password).
func StartVCenter() (*VCenter, error) {
	model := simulator.VPX()
	if err := model.Create(); err != nil {
		return nil, err
	}
	model.Service.TLS = new(tls.Config)
	model.Service.Listen = &url.URL{Host: "127.0.0.1:0", User: url.UserPassword("nodecycle", "vcenter-secret")}
	srv := model.Service.NewServer()
	u := *srv.URL
	u.User = nil
	return &VCenter{Endpoint: u.String(), Username: "nodecycle", Password: "vcenter-secret", model: model, server: srv}, nil
}

// CACert is the simulator's self-signed certificate in PEM, for a
// policy's caBundle.
func (v *VCenter) CACert() string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: v.server.Certificate().Raw}))
}

// PoweredOnVMUUIDs lists the BIOS UUIDs of the simulator's running VMs.
func (v *VCenter) PoweredOnVMUUIDs() []string {
	var out []string
	for _, o := range v.model.Map().All("VirtualMachine") {
		if vm := o.(*simulator.VirtualMachine); vm.Runtime.PowerState == "poweredOn" {
			out = append(out, vm.Config.Uuid)
		}
	}
	return out
}

// Observe reads a VM's power state and boot time through the vSphere API.
func (v *VCenter) Observe(ctx context.Context, uuid string) (on bool, boot string, err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.client == nil {
		u := *v.server.URL
		if v.client, err = govmomi.NewClient(ctx, &u, true); err != nil {
			return false, "", err
		}
	}
	ref, err := object.NewSearchIndex(v.client.Client).FindByUuid(ctx, nil, uuid, true, nil)
	if err != nil {
		return false, "", fmt.Errorf("VM %s not found: %w", uuid, err)
	}
	if ref == nil {
		return false, "", fmt.Errorf("VM %s not found", uuid)
	}
	var vm mo.VirtualMachine
	// The simulator keeps the boot time in the summary.
	if err := v.client.RetrieveOne(ctx, ref.Reference(), []string{"summary.runtime"}, &vm); err != nil {
		return false, "", err
	}
	rt := vm.Summary.Runtime
	if rt.BootTime != nil {
		boot = rt.BootTime.String()
	}
	return rt.PowerState == "poweredOn", boot, nil
}

// Stop ends the simulator.
func (v *VCenter) Stop() {
	v.server.Close()
	v.model.Remove()
}

// Alertmanager is Debian's prometheus-alertmanager on a loopback port.
type Alertmanager struct {
	URL string
	cmd *exec.Cmd
	dir string
}

// StartAlertmanager starts Alertmanager with an empty routing tree.
func StartAlertmanager() (*Alertmanager, error) {
	bin, err := exec.LookPath("prometheus-alertmanager")
	if err != nil {
		return nil, fmt.Errorf("prometheus-alertmanager not found: install Debian's prometheus-alertmanager (.ci/run does): %w", err)
	}
	dir, err := os.MkdirTemp("", "nodecycle-alertmanager-")
	if err != nil {
		return nil, err
	}
	cfg := filepath.Join(dir, "alertmanager.yml")
	if err = os.WriteFile(cfg, []byte("route:\n  receiver: none\nreceivers:\n- name: none\n"), 0o600); err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	_ = l.Close()
	cmd := exec.Command(bin, "--config.file="+cfg, "--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--cluster.listen-address=")
	logf, _ := os.Create(filepath.Join(dir, "alertmanager.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	a := &Alertmanager{URL: "http://" + addr, cmd: cmd, dir: dir}
	for deadline := time.Now().Add(20 * time.Second); ; {
		resp, err := http.Get(a.URL + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return a, nil
			}
		}
		if time.Now().After(deadline) {
			a.Stop()
			return nil, fmt.Errorf("alertmanager did not become ready on %s", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Fire posts an alert that is active until endsAt (zero: for an hour).
func (a *Alertmanager) Fire(labels map[string]string, endsAt time.Time) error {
	if endsAt.IsZero() {
		endsAt = time.Now().Add(time.Hour)
	}
	body, _ := json.Marshal([]map[string]any{{"labels": labels, "startsAt": time.Now().Add(-time.Minute).Format(time.RFC3339), "endsAt": endsAt.Format(time.RFC3339)}})
	resp, err := http.Post(a.URL+"/api/v2/alerts", "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("posting alert: %s", resp.Status)
	}
	return nil
}

// Stop ends Alertmanager and removes its files.
func (a *Alertmanager) Stop() {
	_ = a.cmd.Process.Kill()
	_ = a.cmd.Wait()
	_ = os.RemoveAll(a.dir)
}
