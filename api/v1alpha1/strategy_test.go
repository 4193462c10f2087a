package v1alpha1

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseStrategies(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    []Strategy
		wantErr string
	}{
		{in: "reboot", want: []Strategy{StrategyReboot}},
		{in: "replace", want: []Strategy{StrategyReplace}},
		{in: " reboot , power-cycle,replace ", want: []Strategy{StrategyReboot, StrategyPowerCycle, StrategyReplace}},
		{in: "", wantErr: "is empty"},
		{in: "reboot,,replace", wantErr: `unknown strategy ""`},
		{in: "reboot,reboot", wantErr: "appears twice"},
		{in: "Reboot", wantErr: `unknown strategy "Reboot"`},
		{in: "rebuild", wantErr: `unknown strategy "rebuild"`},
		{in: "replace,reboot", wantErr: "replace must be the last step"},
	} {
		got, err := ParseStrategies(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseStrategies(%q) error = %v, want one containing %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseStrategies(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}
