package nodecycle

import (
	"context"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/power"
	"github.com/nodecycle/nodecycle/internal/settings"
)

// A Strategy is one way through maintenance: reboot, power-cycle, replace.
// The engine takes the slot and cordons the node for every strategy,
// drains it for an in-place one, and uncordons it when an in-place
// strategy is done or failed; the strategy's own phases lie between.
// Adding a strategy is a type in its own file and a line in
// DefaultStrategies.
type Strategy interface {
	// Name is the strategy's name in a ladder.
	Name() v1alpha1.Strategy
	// Check runs when the NodeCycle is about to take its slot, for every
	// strategy of its ladder, before anything is done to the node: an error
	// fails the NodeCycle with the reason, and the node is left alone.
	Check(ctx context.Context, s *step) (v1alpha1.Reason, error)
	// InPlace says the node comes back: nodecycle drains it first, keeps
	// MachineHealthChecks off it meanwhile, and uncordons it at the end.
	// Otherwise the node goes away (replace).
	InPlace() bool
	// Start enters the strategy's first phase, on a node that is cordoned
	// (and drained, when InPlace).
	Start(s *step)
	// Phases are the phases the strategy's Step handles.
	Phases() []v1alpha1.Phase
	// Step does one non-blocking step in the NodeCycle's phase and says
	// when to look again. It ends in Uncordoning (s.moveTo, s.fail,
	// s.escalateOrFail) or, for a strategy that is not InPlace, in a
	// terminal phase (s.finish).
	Step(ctx context.Context, s *step) (reconcile.Result, error)
	// ConditionReason is MaintenanceInProgress's reason in phase p.
	ConditionReason(p v1alpha1.Phase) v1alpha1.Reason
}

// Table is the strategies a ladder may name.
type Table map[v1alpha1.Strategy]Strategy

// DefaultStrategies is nodecycle's table: c reaches the management cluster
// (Machines), power builds the power providers.
func DefaultStrategies(cfg settings.Config, c client.Client, power *power.Cache) Table {
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
func (s *step) currentName() v1alpha1.Strategy {
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
func (s *step) alignStep() {
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
func (s *step) current() (Strategy, bool) {
	st, ok := s.table[s.currentName()]
	return st, ok
}

// startCurrent enters the first phase of the current strategy.
func (s *step) startCurrent() {
	st, _ := s.current() // admission checked every step of the ladder
	s.nc.Status.Strategy = st.Name()
	st.Start(s)
}

// hasNext says whether the ladder has a step after the current one.
func (s *step) hasNext() bool { return int(s.nc.Status.Step)+1 < len(s.nc.Spec.Strategies) }

// escalateOrFail runs the ladder's next strategy on the node, or fails the
// NodeCycle when there is none.
func (s *step) escalateOrFail(reason v1alpha1.Reason, why string) {
	if !s.hasNext() {
		s.fail(reason, why)
		return
	}
	s.nc.Status.Step++
	s.event(corev1.EventTypeWarning, v1alpha1.ReasonEscalating, "%s; escalating to %s", why, s.currentName())
	s.startCurrent()
}

// inPlaceAnywhere says whether some strategy of the ladder keeps the node.
func (s *step) inPlaceAnywhere() bool {
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
