// Package printable makes text that users wrote safe to show: in Events,
// notifications, a NodeCycle's status and the kubectl plugin's terminal
// output. A request's reason, a pause's reason or a node name may carry
// control characters (an escape sequence that rewrites a terminal, a
// newline that forges a second log line or notification) or bidirectional
// overrides that make text read other than it is; each is shown escaped
// (\x1b, \n, \u202e) instead.
package printable

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
)

// String returns s with every control character, bidirectional formatting
// character and invalid byte escaped; printable text is unchanged.
func String(s string) string {
	if clean(s) {
		return s
	}
	var b strings.Builder
	for i, w := 0, 0; i < len(s); i += w {
		r, size := utf8.DecodeRuneInString(s[i:])
		w = size
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x80 && unsafe(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case unsafe(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func clean(s string) bool {
	for i, r := range s {
		if unsafe(r) || (r == utf8.RuneError && !validAt(s, i)) {
			return false
		}
	}
	return true
}

func validAt(s string, i int) bool {
	_, size := utf8.DecodeRuneInString(s[i:])
	return size > 1
}

// unsafe reports a rune that changes how a terminal or a reader sees the
// text around it: C0 and C1 controls, DEL, and Unicode's format characters
// (bidirectional overrides and isolates, zero-width joiners).
func unsafe(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == '\u2028' || r == '\u2029'
}

// Recorder returns rec, which records every Event's note with String
// applied to it once formatted.
func Recorder(rec events.EventRecorder) events.EventRecorder { return recorder{rec} }

type recorder struct{ events.EventRecorder }

func (r recorder) Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any) {
	r.EventRecorder.Eventf(regarding, related, eventtype, reason, action, "%s", String(fmt.Sprintf(note, args...)))
}
