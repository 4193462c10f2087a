package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
)

// receiver is a loopback HTTP server that plays Slack's and Teams'
// incoming webhooks and a generic webhook: it checks each payload's shape
// the way the service would and keeps what it received.
type receiver struct {
	mu  sync.Mutex
	got map[string][]map[string]any // by service
	t   *testing.T
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var payload map[string]any
	if err := json.Unmarshal(body, &payload); err != nil || r.Method != http.MethodPost || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		rc.t.Errorf("%s %s: not a JSON POST (%s): %s", r.Method, r.URL, r.Header.Get("Content-Type"), body)
		http.Error(w, "bad payload", http.StatusBadRequest)
		return
	}
	var service string
	switch {
	case r.Host == "hooks.slack.com" && strings.HasPrefix(r.URL.Path, "/services/"):
		// Slack: text, attachments or blocks; none is "no_text".
		if payload["text"] == nil && payload["attachments"] == nil && payload["blocks"] == nil {
			http.Error(w, "no_text", http.StatusBadRequest)
			return
		}
		service = "slack"
		defer func() { _, _ = io.WriteString(w, "ok") }()
	case strings.HasSuffix(r.Host, ".webhook.office.com") && strings.HasPrefix(r.URL.Path, "/webhookb2/"):
		// Teams: a MessageCard with sections.
		if payload["@type"] != "MessageCard" || payload["sections"] == nil {
			http.Error(w, "Bad payload", http.StatusBadRequest)
			return
		}
		service = "teams"
	case r.URL.Path == "/hook":
		service = "generic"
	default:
		http.NotFound(w, r)
		return
	}
	rc.mu.Lock()
	rc.got[service] = append(rc.got[service], payload)
	rc.mu.Unlock()
}

func (rc *receiver) received(service string) []map[string]any {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.got[service]
}

// smtpServer runs Debian's aiosmtpd (python3-aiosmtpd), a real SMTP server,
// delivering into a maildir.
func smtpServer(t *testing.T) (port int, maildir string) {
	t.Helper()
	bin, err := exec.LookPath("aiosmtpd")
	if err != nil {
		t.Fatalf("aiosmtpd not found: install Debian's python3-aiosmtpd (.ci/run does)")
	}
	port = freePort(t)
	maildir = t.TempDir()
	cmd := exec.Command(bin, "-n", "-l", fmt.Sprintf("127.0.0.1:%d", port), "-c", "aiosmtpd.handlers.Mailbox", filepath.Join(maildir, "mail"))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.Now().Add(20 * time.Second)
	for {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			_ = c.Close()
			return port, filepath.Join(maildir, "mail")
		}
		if time.Now().After(deadline) {
			t.Fatal("aiosmtpd did not listen")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port
}

// mails returns the text of the mails delivered into the maildir.
func mails(dir string) []string {
	var out []string
	for _, sub := range []string{"new", "cur"} {
		entries, _ := os.ReadDir(filepath.Join(dir, sub))
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(dir, sub, e.Name()))
			if err == nil {
				out = append(out, string(b))
			}
		}
	}
	return out
}

// slackToken is a webhook token as shoutrrr's slack:// URL writes it;
// the webhook URL has it with slashes.
const slackToken = "T01234567-B01234567-abcdefghijklmnopqrstuvwx"

// Each receiver gets the message of a notified Event, with the template's
// text; an Event of another reason is not sent; a receiver that is down
// does not keep the others from theirs, and is reported in a Warning Event
// and the counter, without its URL.
func TestNotificationsReachEachReceiver(t *testing.T) {
	rc := &receiver{got: map[string][]map[string]any{}, t: t}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	saved := http.DefaultTransport
	base := saved.(*http.Transport).Clone()
	http.DefaultTransport = roundTripper(func(r *http.Request) (*http.Response, error) {
		if r.URL.Hostname() == "hooks.slack.com" || strings.HasSuffix(r.URL.Hostname(), ".webhook.office.com") {
			r = r.Clone(r.Context())
			r.Host = r.URL.Host
			r.URL.Scheme, r.URL.Host = "http", addr
		}
		return base.RoundTrip(r)
	})
	defer func() { http.DefaultTransport = saved }()

	smtpPort, maildir := smtpServer(t)
	downPort := freePort(t) // nothing listens
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "nodecycle-system", Name: "receivers"}, Data: map[string][]byte{
		"slack":   []byte("slack://hook:" + slackToken + "@webhook"),
		"teams":   []byte("teams://11111111-4444-4444-8444-cccccccccccc@22222222-4444-4444-8444-cccccccccccc/33333301222222222233333333333344/44444444-4444-4444-8444-cccccccccccc/V2secretsecretsecret?host=ops.webhook.office.com"),
		"webhook": []byte("generic://" + addr + "/hook?disabletls=yes&template=json&token=s3cr3t-token"),
		"mail":    []byte(fmt.Sprintf("smtp://127.0.0.1:%d/?from=nodecycle@example.com&to=ops@example.com&auth=None&encryption=None&usestarttls=no&subject=nodecycle", smtpPort)),
		"down":    []byte(fmt.Sprintf("generic://127.0.0.1:%d/hook?disabletls=yes&token=d0wn-secret-token", downPort)),
	}}
	s := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(s)
	c := fake.NewClientBuilder().WithScheme(s).WithObjects(secret).Build()
	rec := events.NewFakeRecorder(100)
	reg := prometheus.NewRegistry()
	n, err := New(c, "nodecycle-system", "receivers", DefaultReasons, DefaultTemplate, rec, logr.Discard(), reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = n.Start(ctx) }()

	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "worker-3"}}
	wrapped := n.Wrap(rec)
	wrapped.Eventf(node, nil, corev1.EventTypeNormal, string(v1alpha1.ReasonCordoned), "Cordon", "not notified")
	wrapped.Eventf(node, nil, corev1.EventTypeWarning, string(v1alpha1.ReasonMaintenanceFailed), "Drain", "Drain did not finish in %s", "10m0s")
	want := "nodecycle: MaintenanceFailed on Node worker-3: Drain did not finish in 10m0s"

	deadline := time.Now().Add(30 * time.Second)
	for len(rc.received("slack")) == 0 || len(rc.received("teams")) == 0 || len(rc.received("generic")) == 0 || len(mails(maildir)) == 0 ||
		testutil.ToFloat64(n.results.WithLabelValues("failed")) == 0 {
		if time.Now().After(deadline) {
			for len(rec.Events) > 0 {
				t.Log(<-rec.Events)
			}
			t.Fatalf("not every receiver was reached: slack %d teams %d generic %d mails %d failed %v", len(rc.received("slack")), len(rc.received("teams")),
				len(rc.received("generic")), len(mails(maildir)), testutil.ToFloat64(n.results.WithLabelValues("failed")))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := fmt.Sprint(rc.received("slack")[0]["attachments"]); !strings.Contains(got, "text:"+want) {
		t.Errorf("slack attachments %s, want the text", got)
	}
	if got := fmt.Sprint(rc.received("teams")[0]["sections"]); !strings.Contains(got, want) {
		t.Errorf("teams sections %s, want the text", got)
	}
	if got := rc.received("generic")[0]["message"]; got != want {
		t.Errorf("generic message %q, want %q", got, want)
	}
	if m := mails(maildir)[0]; !strings.Contains(m, want) || !strings.Contains(m, "To: ops@example.com") {
		t.Errorf("mail %q, want the text to ops@example.com", m)
	}
	for _, service := range []string{"slack", "teams", "generic"} {
		if len(rc.received(service)) != 1 {
			t.Errorf("%s got %d messages, want 1 (Cordoned is not notified)", service, len(rc.received(service)))
		}
	}
	// The dead receiver: reported, named by its key, its URL not shown.
	var warnings []string
	for len(rec.Events) > 0 {
		warnings = append(warnings, <-rec.Events)
	}
	var reported string
	for _, e := range warnings {
		if strings.Contains(e, string(v1alpha1.ReasonNotificationFailed)) {
			reported = e
		}
	}
	if !strings.Contains(reported, `receiver "down"`) || strings.Contains(reported, "d0wn-secret-token") || !strings.Contains(reported, "connection refused") {
		t.Errorf("failure Event %q: want the receiver named, no secret", reported)
	}
	if f := testutil.ToFloat64(n.results.WithLabelValues("failed")); f != 1 {
		t.Errorf("failed %v, want 1", f)
	}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// Redact keeps tokens out of what is shown: the URL's credentials, path
// and query, and the path of every URL in the text.
func TestRedact(t *testing.T) {
	raw := "slack://hook:" + slackToken + "@webhook"
	text := `failed to invoke webhook: Post "https://hooks.slack.com/services/` + strings.ReplaceAll(slackToken, "-", "/") + `": dial tcp: connection refused`
	got := Redact(text, raw)
	for _, part := range strings.Split(slackToken, "-") {
		if strings.Contains(got, part) {
			t.Fatalf("%q shows %q", got, part)
		}
	}
	if !strings.Contains(got, "https://hooks.slack.com/***") || !strings.Contains(got, "connection refused") {
		t.Fatalf("%q: want the host and the cause", got)
	}
	u, _ := url.Parse("smtp://user:hunter22@mail.example.com:587/?from=a@b.c")
	if got := Redact("auth failed for "+u.String()+" with hunter22", u.String()); strings.Contains(got, "hunter22") {
		t.Fatalf("%q shows the password", got)
	}
}

// Bad settings are refused when the manager starts: an unknown reason, a
// template that does not parse or names an unknown field.
func TestBadSettings(t *testing.T) {
	if _, err := ParseReasons("MaintenanceFailed,Exploded"); err == nil || !strings.Contains(err.Error(), `"Exploded" is not a reason`) {
		t.Errorf("unknown reason: %v", err)
	}
	for _, tmpl := range []string{"{{.Reason", "{{.Nope}}"} {
		if _, err := New(nil, "", "", nil, tmpl, nil, logr.Discard(), nil); err == nil {
			t.Errorf("template %q accepted", tmpl)
		}
	}
}
