package printable

import (
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
)

func TestString(t *testing.T) {
	for in, want := range map[string]string{
		"":                            "",
		"kernel update, ticket 42":    "kernel update, ticket 42",
		"Grüße, 東京 ✓":                 "Grüße, 東京 ✓",
		"a\x1b[2J\x1b[Hb":             `a\x1b[2J\x1b[Hb`,
		"line\nforged: Succeeded":     `line\nforged: Succeeded`,
		"tab\there\r":                 `tab\there\r`,
		"del\x7f":                     `del\x7f`,
		"c1\u009bx":                   `c1\u009bx`,
		"evil\u202egnp.exe":           `evil\u202egnp.exe`,
		"isolate\u2066x\u2069":        `isolate\u2066x\u2069`,
		"zero\u200dwidth":             `zero\u200dwidth`,
		"sep\u2028para\u2029":         `sep\u2028para\u2029`,
		"bad\xffbyte":                 `bad\xffbyte`,
		"\xe2\x80":                    `\xe2\x80`,
		"replacement \uFFFD is valid": "replacement \uFFFD is valid",
	} {
		if got := String(in); got != want {
			t.Errorf("String(%q) = %q, want %q", in, got, want)
		}
	}
}

type captured struct{ note string }

func (c *captured) Eventf(_, _ runtime.Object, _, _, _, note string, args ...any) {
	if note != "%s" || len(args) != 1 {
		c.note = "unformatted"
		return
	}
	c.note = args[0].(string)
}

func TestRecorderEscapesTheFormattedNote(t *testing.T) {
	c := &captured{}
	Recorder(c).Eventf(nil, nil, "Normal", "NodeCycleCreated", "Queued", "On-demand request by %s (%s)", "alice", "x\x1b]0;pwned\x07")
	if want := `On-demand request by alice (x\x1b]0;pwned\x07)`; c.note != want {
		t.Fatalf("note %q, want %q", c.note, want)
	}
}

func FuzzString(f *testing.F) {
	for _, s := range []string{"ok", "a\x1bb", "\u202e", "\xff", "東京\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := String(s)
		if !clean(out) {
			t.Fatalf("String(%q) = %q still holds an unsafe rune", s, out)
		}
		if String(out) != out {
			t.Fatalf("String is not idempotent on %q", out)
		}
		if clean(s) && out != s {
			t.Fatalf("printable %q changed to %q", s, out)
		}
	})
}
