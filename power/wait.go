package power

import (
	"context"
	"fmt"
	"time"
)

// WaitFor polls the machine's power state until it is want or ctx ends.
func WaitFor(ctx context.Context, p Provider, m Machine, want PowerState, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	last := PowerUnknown
	for {
		s, err := p.PowerState(ctx, m)
		if err == nil && s == want {
			return nil
		}
		if err == nil {
			last = s
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("waiting for power %s: %w", want, err)
			}
			return fmt.Errorf("waiting for power %s (still %s): %w", want, last, ctx.Err())
		case <-t.C:
		}
	}
}
