package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"text/template"

	"github.com/go-logr/logr"
	"github.com/nicholas-fedor/shoutrrr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
)

// DefaultReasons are the Event reasons that are sent unless told otherwise.
var DefaultReasons = []v1alpha1.Reason{
	v1alpha1.ReasonMaintenanceStarted, v1alpha1.ReasonMaintenanceCompleted, v1alpha1.ReasonMaintenanceFailed,
	v1alpha1.ReasonQuarantined, v1alpha1.ReasonEscalating,
}

// DefaultTemplate is the message of a notification.
const DefaultTemplate = `nodecycle: {{.Reason}} on {{.Kind}} {{if .Namespace}}{{.Namespace}}/{{end}}{{.Name}}{{if .Cluster}} (cluster {{.Cluster}}){{end}}: {{.Message}}`

// Message is what a template is executed with.
type Message struct {
	// Reason is the Event's reason (MaintenanceStarted, ...); Type Normal
	// or Warning.
	Reason, Type string
	// Kind, Namespace and Name are the object the Event is about: a Node,
	// a Cluster API Machine, or a NodeCycle.
	Kind, Namespace, Name string
	// Cluster is the Cluster API cluster, when known.
	Cluster string
	// Message is the Event's note.
	Message string

	regarding runtime.Object
}

// Notifier sends the Events of Reasons to the receivers listed in a
// Secret: each key's value is a shoutrrr URL (slack://..., teams://...,
// generic://..., smtp://...).
type Notifier struct {
	// Secrets reads the Secret, live, when a message is sent.
	Secrets client.Reader
	// Namespace and SecretName name the Secret.
	Namespace, SecretName string
	// Reasons are the Event reasons that are sent.
	Reasons map[v1alpha1.Reason]bool
	// Template makes the text of a message.
	Template *template.Template
	// Recorder reports a failed notification as a Warning Event
	// (NotificationFailed) on the object the notification was about.
	Recorder events.EventRecorder
	Log      logr.Logger

	queue   chan Message
	results *prometheus.CounterVec
}

// New returns a Notifier; reg, when not nil, gets its counter
// nodecycle_notifications_total{result="sent|failed|dropped"}.
func New(secrets client.Reader, namespace, secretName string, reasons []v1alpha1.Reason, text string, rec events.EventRecorder, log logr.Logger, reg prometheus.Registerer) (*Notifier, error) {
	tmpl, err := template.New("notification").Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, fmt.Errorf("notification template: %w", err)
	}
	if err := tmpl.Execute(&bytes.Buffer{}, Message{}); err != nil {
		return nil, fmt.Errorf("notification template: %w", err)
	}
	n := &Notifier{Secrets: secrets, Namespace: namespace, SecretName: secretName, Reasons: map[v1alpha1.Reason]bool{},
		Template: tmpl, Recorder: rec, Log: log, queue: make(chan Message, 256),
		results: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nodecycle_notifications_total",
			Help: "Notifications by result: sent (to every receiver), failed (at least one receiver failed), dropped (the queue was full)."}, []string{"result"})}
	for _, r := range reasons {
		n.Reasons[r] = true
	}
	if reg != nil {
		if err := reg.Register(n.results); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// ParseReasons reads a comma-separated list of Event reasons.
func ParseReasons(list string) ([]v1alpha1.Reason, error) {
	known := map[v1alpha1.Reason]bool{v1alpha1.ReasonNodeCycleCreated: true, v1alpha1.ReasonRebootVerified: true, v1alpha1.ReasonQuarantineLifted: true,
		v1alpha1.ReasonRequestRefused: true, v1alpha1.ReasonMachineDeleted: true, v1alpha1.ReasonPodsDeleted: true, v1alpha1.ReasonUncordoned: true,
		v1alpha1.ReasonNodeSkipped: true, v1alpha1.ReasonNodeSkipLifted: true, v1alpha1.ReasonLeftCordoned: true}
	for _, r := range DefaultReasons {
		known[r] = true
	}
	var out []v1alpha1.Reason
	for _, part := range strings.Split(list, ",") {
		r := v1alpha1.Reason(strings.TrimSpace(part))
		if r == "" {
			continue
		}
		if !known[r] {
			names := make([]string, 0, len(known))
			for k := range known {
				names = append(names, string(k))
			}
			sort.Strings(names)
			return nil, fmt.Errorf("%q is not a reason that can be notified; known: %s", r, strings.Join(names, ", "))
		}
		out = append(out, r)
	}
	return out, nil
}

// Wrap returns rec, which also hands the Events of n's reasons to n. Sending
// happens in Start's goroutine: a slow or dead receiver never holds up a
// reconcile.
func (n *Notifier) Wrap(rec events.EventRecorder) events.EventRecorder {
	return recorder{EventRecorder: rec, n: n}
}

type recorder struct {
	events.EventRecorder
	n *Notifier
}

func (r recorder) Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any) {
	r.EventRecorder.Eventf(regarding, related, eventtype, reason, action, note, args...)
	if r.n.Reasons[v1alpha1.Reason(reason)] {
		r.n.enqueue(messageFor(regarding, related, eventtype, reason, fmt.Sprintf(note, args...)))
	}
}

func (n *Notifier) enqueue(m Message) {
	select {
	case n.queue <- m:
	default:
		n.results.WithLabelValues("dropped").Inc()
		n.Log.Info("Notification dropped: the queue is full", "reason", m.Reason, "kind", m.Kind, "name", m.Name)
	}
}

func messageFor(regarding, related runtime.Object, eventtype, reason, text string) Message {
	m := Message{Reason: reason, Type: eventtype, Message: text, regarding: regarding}
	if acc, err := meta.Accessor(regarding); err == nil {
		m.Namespace, m.Name = acc.GetNamespace(), acc.GetName()
	}
	switch o := regarding.(type) {
	case *corev1.Node:
		m.Kind = "Node"
	case *clusterv1.Machine:
		m.Kind, m.Cluster = "Machine", o.Spec.ClusterName
	case *v1alpha1.NodeCycle:
		m.Kind, m.Cluster = "NodeCycle", o.Spec.ClusterName
	default:
		m.Kind = regarding.GetObjectKind().GroupVersionKind().Kind
	}
	if nc, ok := related.(*v1alpha1.NodeCycle); ok && m.Cluster == "" {
		m.Cluster = nc.Spec.ClusterName
	}
	return m
}

// Start sends the queued notifications until ctx ends; it runs in the
// manager (as its leader: only the leader records Events).
func (n *Notifier) Start(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case m := <-n.queue:
			n.send(ctx, m)
		}
	}
}

// send delivers m to every receiver of the Secret; a failure is counted,
// logged and recorded as a Warning Event, without the receiver's URL.
func (n *Notifier) send(ctx context.Context, m Message) {
	receivers, err := n.receivers(ctx)
	if err != nil {
		n.failed(m, "", err)
		return
	}
	var text bytes.Buffer
	if err := n.Template.Execute(&text, m); err != nil {
		n.failed(m, "", fmt.Errorf("notification template: %w", err))
		return
	}
	ok := true
	for _, name := range sortedKeys(receivers) {
		raw := receivers[name]
		sender, err := shoutrrr.CreateSender(raw)
		if err == nil {
			err = errors.Join(sender.Send(text.String(), nil)...)
		}
		if err != nil {
			ok = false
			n.failed(m, name, errors.New(Redact(err.Error(), raw)))
		}
	}
	if ok {
		n.results.WithLabelValues("sent").Inc()
	}
}

// receivers reads the Secret: key -> shoutrrr URL.
func (n *Notifier) receivers(ctx context.Context) (map[string]string, error) {
	s := &corev1.Secret{}
	if err := n.Secrets.Get(ctx, client.ObjectKey{Namespace: n.Namespace, Name: n.SecretName}, s); err != nil {
		return nil, fmt.Errorf("reading Secret %s/%s: %w", n.Namespace, n.SecretName, err)
	}
	out := map[string]string{}
	for k, v := range s.Data {
		if u := strings.TrimSpace(string(v)); u != "" {
			out[k] = u
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("Secret %s/%s lists no receiver (each key's value is a shoutrrr URL)", n.Namespace, n.SecretName)
	}
	return out, nil
}

func (n *Notifier) failed(m Message, receiver string, err error) {
	n.results.WithLabelValues("failed").Inc()
	where := "Notification"
	if receiver != "" {
		where = fmt.Sprintf("Notification to receiver %q (a key of Secret %s/%s)", receiver, n.Namespace, n.SecretName)
	}
	n.Log.Error(err, "Notification failed", "receiver", receiver, "reason", m.Reason, "kind", m.Kind, "name", m.Name)
	if m.regarding != nil && n.Recorder != nil {
		n.Recorder.Eventf(m.regarding, nil, corev1.EventTypeWarning, string(v1alpha1.ReasonNotificationFailed), "Notify",
			"%s of %s failed; maintenance goes on: %v", where, m.Reason, err)
	}
}

// Redact removes from text what the receiver URL raw carries in secret:
// the URL itself, its user information, its path and query (webhook
// tokens live there), and, for the URLs the services build from it (a
// Slack webhook), every path of a URL in the text beyond its host.
func Redact(text, raw string) string {
	// URLs in the text (http://host/path...): scheme and host only.
	var b strings.Builder
	for i, word := range strings.Fields(text) {
		trimmed := strings.Trim(word, `"'():,`)
		if u, err := url.Parse(trimmed); err == nil && u.Scheme != "" && u.Host != "" && (u.Path != "" || u.RawQuery != "" || u.User != nil) {
			word = strings.Replace(word, trimmed, u.Scheme+"://"+u.Host+"/***", 1)
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(word)
	}
	text = b.String()
	secrets := []string{raw}
	if u, err := url.Parse(raw); err == nil {
		if u.User != nil {
			secrets = append(secrets, u.User.String(), u.User.Username())
			if p, ok := u.User.Password(); ok {
				secrets = append(secrets, p)
				secrets = append(secrets, strings.FieldsFunc(p, isSeparator)...)
			}
		}
		secrets = append(secrets, u.RawQuery, u.Path)
		secrets = append(secrets, strings.FieldsFunc(u.Path, isSeparator)...)
		for _, vs := range u.Query() {
			secrets = append(secrets, vs...)
		}
	}
	sort.Slice(secrets, func(i, j int) bool { return len(secrets[i]) > len(secrets[j]) })
	for _, s := range secrets {
		if len(s) >= 8 { // shorter ones are words ("hook"), not tokens
			text = strings.ReplaceAll(text, s, "***")
		}
	}
	return text
}

// isSeparator splits the parts of a token (Slack's T.../B.../X...).
func isSeparator(r rune) bool { return r == '/' || r == '-' || r == ':' }

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
