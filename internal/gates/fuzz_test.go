package gates

import (
	"strings"
	"testing"
	"time"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
)

// FuzzInWindow: a policy's maintenance window, however written, is either
// refused with an error or answers: open now, or the next opening in the
// next eight days. Seeds in testdata/fuzz/FuzzInWindow.
func FuzzInWindow(f *testing.F) {
	f.Add("22:00", "04:00", "Europe/Berlin", "Mon,Fri", int64(1764453600))
	f.Add("00:00", "00:00", "", "", int64(0))
	f.Add("25:00", "04:00", "UTC", "", int64(1764453600))
	f.Add("02:00", "03:00", "America/New_York", "Sun", int64(1762063200)) // the day clocks go back
	f.Add("10:00", "11:00", "Nowhere/City", "Mon", int64(1764453600))
	f.Fuzz(func(t *testing.T, start, end, zone, days string, unix int64) {
		w := v1alpha1.MaintenanceWindow{Start: start, End: end, TimeZone: zone}
		if days != "" {
			for _, d := range strings.Split(days, ",") {
				w.Days = append(w.Days, v1alpha1.Weekday(d))
			}
		}
		now := time.Unix(unix%(1<<40), 0)
		open, next, err := InWindow([]v1alpha1.MaintenanceWindow{w}, now)
		if err != nil {
			return
		}
		if open != next.IsZero() {
			t.Fatalf("open %t with next %s", open, next)
		}
		if !open && (!next.After(now) || next.Sub(now) > 8*24*time.Hour+time.Hour) {
			t.Fatalf("next opening %s is not in the next eight days after %s", next, now)
		}
	})
}
