package gates

import (
	"strings"
	"testing"
	"time"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
)

func TestFrozen(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	holidays := v1alpha1.Freeze{Start: "2026-12-19T18:00:00+01:00", End: "2027-01-04T08:00:00+01:00", Reason: "holidays"}
	// Starts before the holidays end: the freeze runs on into it.
	release := v1alpha1.Freeze{Start: "2027-01-03T00:00:00Z", End: "2027-01-06T00:00:00Z", Reason: "release"}
	later := v1alpha1.Freeze{Start: "2027-02-01T00:00:00Z", End: "2027-02-02T00:00:00Z", Reason: "audit"}
	cases := []struct {
		name    string
		freezes []v1alpha1.Freeze
		now     string
		frozen  bool
		until   string
		reason  string
	}{
		{"no freezes", nil, "2026-12-24T12:00:00Z", false, "", ""},
		{"before the freeze", []v1alpha1.Freeze{holidays}, "2026-12-19T16:59:59Z", false, "", ""},
		{"at its start (local time)", []v1alpha1.Freeze{holidays}, "2026-12-19T17:00:00Z", true, "2027-01-04T07:00:00Z", "holidays"},
		{"open again at its end", []v1alpha1.Freeze{holidays}, "2027-01-04T07:00:00Z", false, "", ""},
		{"carried on by an overlapping one", []v1alpha1.Freeze{later, release, holidays}, "2026-12-24T12:00:00Z", true, "2027-01-06T00:00:00Z", "holidays"},
		{"inside both: the longest says why", []v1alpha1.Freeze{holidays, release}, "2027-01-03T12:00:00Z", true, "2027-01-06T00:00:00Z", "release"},
		{"between two", []v1alpha1.Freeze{release, later}, "2027-01-20T00:00:00Z", false, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			frozen, until, reason, err := Frozen(c.freezes, at(c.now))
			if err != nil {
				t.Fatal(err)
			}
			if frozen != c.frozen || reason != c.reason {
				t.Fatalf("frozen %t (%q), want %t (%q)", frozen, reason, c.frozen, c.reason)
			}
			if c.frozen && !until.Equal(at(c.until)) {
				t.Fatalf("until %s, want %s", until, c.until)
			}
		})
	}
}

func TestFreezeRefused(t *testing.T) {
	for _, c := range []struct {
		freeze v1alpha1.Freeze
		want   string
	}{
		{v1alpha1.Freeze{Start: "2026-12-19", End: "2027-01-04T08:00:00Z", Reason: "x"}, "start"},
		{v1alpha1.Freeze{Start: "2026-12-19T18:00:00", End: "2027-01-04T08:00:00Z", Reason: "x"}, "offset"},
		{v1alpha1.Freeze{Start: "2026-12-19T18:00:00Z", End: "2026-12-19T18:00:00Z", Reason: "x"}, "not after"},
		{v1alpha1.Freeze{Start: "2026-12-19T18:00:00Z", End: "2027-12-19T18:00:00Z", Reason: "x"}, "more than 31 days"},
		{v1alpha1.Freeze{Start: "2026-12-19T18:00:00Z", End: "2026-12-20T18:00:00Z", Reason: " "}, "reason"},
	} {
		err := ValidateFreezes([]v1alpha1.Freeze{c.freeze})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want one saying %q", c.freeze, err, c.want)
		}
		if _, _, _, err := Frozen([]v1alpha1.Freeze{c.freeze}, time.Now()); err == nil {
			t.Errorf("%+v: Frozen took it", c.freeze)
		}
	}
	long := v1alpha1.Freeze{Start: "2026-12-19T18:00:00Z", End: "2027-12-19T18:00:00Z", Reason: "year-end project", Long: true}
	if err := ValidateFreezes([]v1alpha1.Freeze{long}); err != nil {
		t.Errorf("a long freeze marked long: %v", err)
	}
}

func TestParseFreezeFlag(t *testing.T) {
	f, err := ParseFreezeFlag("2026-12-19T18:00:00+01:00, 2027-01-04T08:00:00+01:00, holidays, all of them")
	if err != nil {
		t.Fatal(err)
	}
	if f.Start != "2026-12-19T18:00:00+01:00" || f.End != "2027-01-04T08:00:00+01:00" || f.Reason != "holidays, all of them" {
		t.Fatalf("parsed %+v", f)
	}
	for _, bad := range []string{"", "2026-12-19T18:00:00Z,2026-12-20T18:00:00Z", "2026-12-19T18:00:00Z,2027-12-20T18:00:00Z,too long"} {
		if _, err := ParseFreezeFlag(bad); err == nil {
			t.Errorf("%q taken", bad)
		}
	}
}

// FuzzFrozen: freezes, however written, are refused with an error or
// answer consistently: frozen with an end after now and a reason, or not.
func FuzzFrozen(f *testing.F) {
	f.Add("2026-12-19T18:00:00+01:00", "2027-01-04T08:00:00+01:00", "holidays", false, "2027-01-03T00:00:00Z", "2027-01-06T00:00:00Z", int64(1766700000))
	f.Add("2026-12-19T18:00:00Z", "2027-12-19T18:00:00Z", "long", true, "", "", int64(0))
	f.Add("2026-02-30T00:00:00Z", "2026-03-01T00:00:00Z", "no such day", false, "x", "y", int64(1772000000))
	f.Fuzz(func(t *testing.T, start, end, reason string, long bool, start2, end2 string, unix int64) {
		freezes := []v1alpha1.Freeze{{Start: start, End: end, Reason: reason, Long: long}}
		if start2 != "" {
			freezes = append(freezes, v1alpha1.Freeze{Start: start2, End: end2, Reason: "second"})
		}
		now := time.Unix(unix%(1<<40), 0)
		frozen, until, why, err := Frozen(freezes, now)
		if err != nil {
			if ValidateFreezes(freezes) == nil {
				t.Fatalf("Frozen refused what ValidateFreezes took: %v", err)
			}
			return
		}
		if frozen != !until.IsZero() || (frozen && (!until.After(now) || why == "")) {
			t.Fatalf("frozen %t until %s (%q) at %s", frozen, until, why, now)
		}
	})
}
