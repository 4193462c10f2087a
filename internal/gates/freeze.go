package gates

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
)

// MaxFreeze is the longest freeze not marked long: 31 days.
const MaxFreeze = 31 * 24 * time.Hour

// FreezePeriod parses a freeze: its start and end, RFC 3339 with an offset
// from UTC, end after start, and at most MaxFreeze apart unless long.
func FreezePeriod(f v1alpha1.Freeze) (start, end time.Time, err error) {
	if start, err = time.Parse(time.RFC3339, f.Start); err != nil {
		return start, end, fmt.Errorf("start %q is not an RFC 3339 time with its offset (2026-12-19T18:00:00+01:00)", f.Start)
	}
	if end, err = time.Parse(time.RFC3339, f.End); err != nil {
		return start, end, fmt.Errorf("end %q is not an RFC 3339 time with its offset (2027-01-04T08:00:00+01:00)", f.End)
	}
	switch {
	case !end.After(start):
		return start, end, fmt.Errorf("end %s is not after start %s", f.End, f.Start)
	case end.Sub(start) > MaxFreeze && !f.Long:
		return start, end, fmt.Errorf("%s to %s is more than 31 days: mark it long, or check the dates", f.Start, f.End)
	case strings.TrimSpace(f.Reason) == "":
		return start, end, errors.New("a freeze needs a reason")
	}
	return start, end, nil
}

// ValidateFreezes checks each freeze.
func ValidateFreezes(freezes []v1alpha1.Freeze) error {
	var errs []error
	for i, f := range freezes {
		if _, _, err := FreezePeriod(f); err != nil {
			errs = append(errs, fmt.Errorf("freezes[%d]: %w", i, err))
		}
	}
	return errors.Join(errs...)
}

// Frozen reports whether now is inside one of the freezes and, if so,
// until when: the end of the freezes that hold now, carried on by those
// that start before that end (one freeze running into the next), with the
// reason of the freeze that holds now and lasts longest.
func Frozen(freezes []v1alpha1.Freeze, now time.Time) (frozen bool, until time.Time, reason string, err error) {
	type period struct {
		start, end time.Time
		reason     string
	}
	periods := make([]period, 0, len(freezes))
	for i, f := range freezes {
		start, end, err := FreezePeriod(f)
		if err != nil {
			return false, time.Time{}, "", fmt.Errorf("freezes[%d]: %w", i, err)
		}
		periods = append(periods, period{start, end, f.Reason})
		if !now.Before(start) && now.Before(end) && end.After(until) {
			until, reason = end, f.Reason
		}
	}
	if until.IsZero() {
		return false, time.Time{}, "", nil
	}
	for extended := true; extended; {
		extended = false
		for _, p := range periods {
			if !p.start.After(until) && p.end.After(until) {
				until, extended = p.end, true
			}
		}
	}
	return true, until, reason, nil
}

// ParseFreezeFlag parses the manager's --freeze: START,END,REASON, the
// times RFC 3339 with their offsets, at most 31 days apart (several flags
// make a longer freeze).
func ParseFreezeFlag(v string) (v1alpha1.Freeze, error) {
	parts := strings.SplitN(v, ",", 3)
	if len(parts) != 3 {
		return v1alpha1.Freeze{}, fmt.Errorf("freeze %q is not START,END,REASON", v)
	}
	f := v1alpha1.Freeze{Start: strings.TrimSpace(parts[0]), End: strings.TrimSpace(parts[1]), Reason: strings.TrimSpace(parts[2])}
	if _, _, err := FreezePeriod(f); err != nil {
		return v1alpha1.Freeze{}, fmt.Errorf("freeze %q: %w", v, err)
	}
	return f, nil
}
