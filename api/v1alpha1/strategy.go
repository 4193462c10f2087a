package v1alpha1

import (
	"fmt"
	"strings"
)

// ParseStrategies reads an escalation ladder written as the value of
// AnnotationStrategy: strategies separated by commas, each at most once,
// e.g. "reboot,power-cycle,replace". Every problem is named.
func ParseStrategies(value string) ([]Strategy, error) {
	if strings.TrimSpace(value) == "" {
		return nil, fmt.Errorf("%s is empty; want one of reboot, power-cycle, replace or a comma-separated ladder of them", AnnotationStrategy)
	}
	var ladder []Strategy
	seen := map[Strategy]bool{}
	for _, part := range strings.Split(value, ",") {
		s := Strategy(strings.TrimSpace(part))
		switch s {
		case StrategyReboot, StrategyPowerCycle, StrategyReplace:
		default:
			return nil, fmt.Errorf("%s=%q: unknown strategy %q; want reboot, power-cycle or replace", AnnotationStrategy, value, s)
		}
		if seen[s] {
			return nil, fmt.Errorf("%s=%q: strategy %q appears twice", AnnotationStrategy, value, s)
		}
		if seen[StrategyReplace] {
			return nil, fmt.Errorf("%s=%q: replace must be the last step; nothing can follow a deleted Machine", AnnotationStrategy, value)
		}
		seen[s] = true
		ladder = append(ladder, s)
	}
	return ladder, nil
}
