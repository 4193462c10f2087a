package v1alpha1

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// FuzzParseStrategies: any annotation value is either refused with an
// error or gives a ladder of known strategies, each once, replace only
// last, that reads back the same. Seeds in testdata/fuzz/FuzzParseStrategies.
func FuzzParseStrategies(f *testing.F) {
	for _, s := range []string{"reboot", "reboot,power-cycle,replace", " reboot , power-cycle ", "reboot,reboot", "replace,reboot", "", ",", "Reboot"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, value string) {
		ladder, err := ParseStrategies(value)
		if err != nil {
			if !strings.Contains(err.Error(), AnnotationStrategy) {
				t.Fatalf("error %q does not name the annotation", err)
			}
			return
		}
		if len(ladder) == 0 {
			t.Fatal("an empty ladder was accepted")
		}
		for i, s := range ladder {
			if !slices.Contains([]Strategy{StrategyReboot, StrategyPowerCycle, StrategyReplace}, s) {
				t.Fatalf("unknown strategy %q accepted", s)
			}
			if slices.Index(ladder, s) != i {
				t.Fatalf("strategy %q twice", s)
			}
			if s == StrategyReplace && i != len(ladder)-1 {
				t.Fatal("replace not last")
			}
		}
		parts := make([]string, len(ladder))
		for i, s := range ladder {
			parts[i] = string(s)
		}
		again, err := ParseStrategies(strings.Join(parts, ","))
		if err != nil || !slices.Equal(again, ladder) {
			t.Fatalf("%v does not read back: %v %v", ladder, again, err)
		}
	})
}

// FuzzDuration: any stored JSON value decodes (H1: one object must never
// make a list undecodable); a valid duration round-trips, an invalid one
// is reported and written back as stored. Seeds in testdata/fuzz/FuzzDuration.
func FuzzDuration(f *testing.F) {
	for _, s := range []string{`"90s"`, `"9999999999h"`, `"1h30m"`, `42`, `null`, `""`, `"-5m"`, `{}`, `"1e3s"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, stored []byte) {
		if !json.Valid(stored) {
			return // what the API server stores is JSON; only JSON reaches UnmarshalJSON
		}
		var d Duration
		if err := d.UnmarshalJSON(stored); err != nil {
			t.Fatalf("%q did not decode: %v", stored, err)
		}
		out, err := json.Marshal(d)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		var back Duration
		if err := json.Unmarshal(out, &back); err != nil || back != d {
			t.Fatalf("%q -> %s -> %+v, want %+v (%v)", stored, out, back, d, err)
		}
		if d.Err() != nil && d.Duration != 0 {
			t.Fatalf("an invalid value has a duration: %+v", d)
		}
	})
}
