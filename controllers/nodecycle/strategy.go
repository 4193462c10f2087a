package nodecycle

import (
	"context"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/powersettings"
	"github.com/nodecycle/nodecycle/internal/settings"
)

// A Strategy is one way through maintenance: reboot, power-cycle, replace.
// The engine takes the slot and cordons the node for every strategy,
// drains it for an in-place one, and uncordons it when an in-place
// strategy is done or failed; the strategy's own phases lie between.
// Adding a strategy is a type in its own file, a line in
// DefaultStrategies, and its name and phases in the API's enums (see
// docs/design.md, "Adding a strategy").
type Strategy interface {
	// Name is the strategy's name in a ladder.
	Name() v1alpha1.Strategy
	// Check runs when the NodeCycle is about to take its slot, for every
	// strategy of its ladder, before anything is done to the node: an error
	// fails the NodeCycle with the reason, and the node is left alone.
	Check(ctx context.Context, s *scope) (v1alpha1.Reason, error)
	// InPlace says the node comes back: nodecycle drains it first, keeps
	// MachineHealthChecks off it meanwhile, and uncordons it at the end.
	// Otherwise the node goes away (replace).
	InPlace() bool
	// Start enters the strategy's first phase, on a node that is cordoned
	// (and drained, when InPlace).
	Start(s *scope)
	// Phases describes the phases the strategy's Advance handles.
	Phases() []PhaseSpec
	// Advance does one non-blocking piece of work in the NodeCycle's
	// phase and says when to look again. It ends in Uncordoning
	// (s.moveTo, s.fail, s.escalateOrFail; an in-place strategy proves
	// the reboot with s.waitForNewBoot) or, for a strategy that is not
	// InPlace, in a terminal phase (s.finish).
	Advance(ctx context.Context, s *scope) (reconcile.Result, error)
	// Abandon undoes what the strategy's phase would leave behind when
	// the NodeCycle ends without the strategy: it is deleted (a phase that
	// holds the finalizer), or its node is gone. note says what it did or
	// failed to do, for the NodeCycle's message; retry, when not zero,
	// asks a deleted NodeCycle to wait and call it again.
	Abandon(ctx context.Context, s *scope) (note string, retry time.Duration)
}

// PhaseSpec tells the engine how to treat a phase.
type PhaseSpec struct {
	Phase v1alpha1.Phase
	// Reason is MaintenanceInProgress's reason in the phase.
	Reason v1alpha1.Reason
	// Quiet phases pass within a reconcile or two: the Node's condition
	// is not written for them.
	Quiet bool
	// Chained phases run right after the reconcile that entered them, in
	// its save: their first work is safe to do again after a crash.
	Chained bool
	// Held phases keep the finalizer nodecycle.io/power-on on the
	// NodeCycle (once the strategy added it): deleting the NodeCycle runs
	// the strategy's Abandon first.
	Held bool
}

// enginePhases are the phases every strategy shares, the engine's own.
var enginePhases = []PhaseSpec{
	{Phase: v1alpha1.PhaseCordoning, Reason: v1alpha1.ReasonCordoning, Quiet: true, Chained: true},
	{Phase: v1alpha1.PhaseDraining, Reason: v1alpha1.ReasonDraining, Chained: true},
	{Phase: v1alpha1.PhaseWaitingForPreRebootHooks, Reason: v1alpha1.ReasonWaitingForHooks},
	{Phase: v1alpha1.PhaseWaitingForPods, Reason: v1alpha1.ReasonWaitingForPods},
	{Phase: v1alpha1.PhaseWaitingForPostRebootHooks, Reason: v1alpha1.ReasonWaitingForHooks},
	{Phase: v1alpha1.PhaseUncordoning, Reason: v1alpha1.ReasonUncordoning, Quiet: true, Chained: true},
}

// enginePhase reports whether phase p is the engine's, not a strategy's
// ("" and Pending included).
func enginePhase(p v1alpha1.Phase) bool {
	return p == "" || p == v1alpha1.PhasePending || slices.ContainsFunc(enginePhases, func(ps PhaseSpec) bool { return ps.Phase == p })
}

// phase describes the NodeCycle's phase: the engine's, or the current
// strategy's; false for a phase neither knows (Pending and the terminal
// phases among them).
func (s *scope) phase() (PhaseSpec, bool) {
	p := s.nc.Status.Phase
	specs := enginePhases
	if st, ok := s.current(); ok {
		specs = append(slices.Clip(enginePhases), st.Phases()...)
	}
	i := slices.IndexFunc(specs, func(ps PhaseSpec) bool { return ps.Phase == p })
	if i < 0 {
		return PhaseSpec{}, false
	}
	return specs[i], true
}

// Table is the strategies a ladder may name.
type Table map[v1alpha1.Strategy]Strategy

// DefaultStrategies is nodecycle's table: c reaches the management cluster
// (Machines), power builds the power providers.
func DefaultStrategies(cfg settings.Config, c client.Client, power *powersettings.Cache) Table {
	return NewTable(
		&reboot{agentSelector: cfg.AgentSelector},
		&powerCycle{power: power, client: c},
		&replace{client: c, defaultTimeout: cfg.ReplaceTimeout},
	)
}

// NewTable builds a Table.
func NewTable(strategies ...Strategy) Table {
	t := Table{}
	for _, s := range strategies {
		t[s.Name()] = s
	}
	return t
}

// currentName is the ladder's strategy that runs now.
func (s *scope) currentName() v1alpha1.Strategy {
	ladder, i := s.nc.Spec.Strategies, int(s.nc.Status.Step)
	if i < len(ladder) {
		return ladder[i]
	}
	if len(ladder) == 0 {
		return v1alpha1.StrategyReboot
	}
	return ladder[len(ladder)-1]
}

// alignStep makes status.step name status.strategy in a NodeCycle saved
// before status.step existed (status.strategy was all there was).
func (s *scope) alignStep() {
	st, ladder := s.nc.Status.Strategy, s.nc.Spec.Strategies
	if st == "" || (int(s.nc.Status.Step) < len(ladder) && ladder[s.nc.Status.Step] == st) {
		return
	}
	if i := slices.Index(ladder, st); i >= 0 {
		s.nc.Status.Step = int32(i)
	}
}

// current is the Strategy that runs now; false when the table has none of
// that name.
func (s *scope) current() (Strategy, bool) {
	st, ok := s.table[s.currentName()]
	return st, ok
}

// startCurrent enters the first phase of the current strategy.
func (s *scope) startCurrent() {
	st, _ := s.current() // admission checked every step of the ladder
	s.nc.Status.Strategy = st.Name()
	st.Start(s)
}

// hasNext says whether the ladder has a step after the current one.
func (s *scope) hasNext() bool { return int(s.nc.Status.Step)+1 < len(s.nc.Spec.Strategies) }

// escalateOrFail runs the ladder's next strategy on the node, or fails the
// NodeCycle when there is none.
func (s *scope) escalateOrFail(reason v1alpha1.Reason, why string) {
	if !s.hasNext() {
		s.fail(reason, why)
		return
	}
	s.nc.Status.Step++
	s.event(corev1.EventTypeWarning, v1alpha1.ReasonEscalating, "%s; escalating to %s", why, s.currentName())
	s.startCurrent()
}

// inPlaceAnywhere says whether some strategy of the ladder keeps the node.
func (s *scope) inPlaceAnywhere() bool {
	for _, name := range s.nc.Spec.Strategies {
		if st, ok := s.table[name]; ok && st.InPlace() {
			return true
		}
	}
	return false
}

func ladderString(l []v1alpha1.Strategy) string {
	parts := make([]string, len(l))
	for i, s := range l {
		parts[i] = string(s)
	}
	return strings.Join(parts, ",")
}
