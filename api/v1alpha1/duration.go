package v1alpha1

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"
)

// Duration is a length of time written as a Go duration string ("90s",
// "10m"). It is metav1.Duration with one difference: a stored value that is
// not a duration (an object written before the CRD checked it, or by hand
// into etcd) decodes without error and is kept, as stored, in Invalid. One
// such object must never stop the manager's cache from listing all the
// others: the object is reported (Err) and nothing is done with it.
// +kubebuilder:validation:Type=string
type Duration struct {
	time.Duration `json:"-"`
	// Invalid is the stored JSON value when it is not a duration string.
	Invalid string `json:"-"`
}

// NewDuration returns d as a Duration.
func NewDuration(d time.Duration) Duration { return Duration{Duration: d} }

// Err says why the stored value is not a duration; nil when it is one.
func (d Duration) Err() error {
	if d.Invalid == "" {
		return nil
	}
	return fmt.Errorf("%s is not a duration", d.Invalid)
}

// UnmarshalJSON implements json.Unmarshaler; it never fails.
func (d *Duration) UnmarshalJSON(b []byte) error {
	*d = Duration{}
	if string(b) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		if v, err := time.ParseDuration(s); err == nil {
			d.Duration = v
			return nil
		}
	}
	d.Invalid = normalJSON(b)
	return nil
}

// normalJSON is b re-encoded the way encoding/json writes it (so that it
// reads back the same), or b as a JSON string when it is not JSON.
func normalJSON(b []byte) string {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err == nil && !dec.More() {
		if out, err := json.Marshal(v); err == nil {
			return string(out)
		}
	}
	out, _ := json.Marshal(string(b)) // a string always marshals
	return string(out)
}

// MarshalJSON implements json.Marshaler: an invalid value is written back
// exactly as it was stored.
func (d Duration) MarshalJSON() ([]byte, error) {
	if d.Invalid != "" {
		return []byte(d.Invalid), nil
	}
	return json.Marshal(d.String())
}

// ToUnstructured implements value.UnstructuredConverter.
func (d Duration) ToUnstructured() any {
	if d.Invalid != "" {
		var v any
		_ = json.Unmarshal([]byte(d.Invalid), &v) // Invalid is always valid JSON
		return v
	}
	return d.String()
}

// durationErrs names each of the durations that is not one.
func durationErrs(fields map[string]*Duration) error {
	var errs []error
	for _, name := range sortedKeys(fields) {
		if d := fields[name]; d != nil && d.Err() != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, d.Err()))
		}
	}
	return errors.Join(errs...)
}

func sortedKeys(m map[string]*Duration) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (p *PowerCycleSpec) durations(prefix string, into map[string]*Duration) {
	if p != nil {
		into[prefix+"powerCycle.softOffTimeout"] = &p.SoftOffTimeout
		into[prefix+"powerCycle.powerTimeout"] = &p.PowerTimeout
	}
}

// DurationErr names the durations of the spec that are not durations.
func (s *NodeCycleSpec) DurationErr() error {
	fields := map[string]*Duration{
		"spec.drain.timeout":  &s.Drain.Timeout,
		"spec.rebootTimeout":  &s.RebootTimeout,
		"spec.replaceTimeout": s.ReplaceTimeout,
		"spec.settleTime":     s.SettleTime,
	}
	if s.Hooks != nil {
		fields["spec.hooks.timeout"] = s.Hooks.Timeout
	}
	if s.WaitForPods != nil {
		fields["spec.waitForPods.timeout"] = s.WaitForPods.Timeout
	}
	s.PowerCycle.durations("spec.", fields)
	return durationErrs(fields)
}

// DurationErr names the durations of the spec that are not durations.
func (s *NodeCyclePolicySpec) DurationErr() error {
	fields := map[string]*Duration{
		"spec.drainTimeout":  s.DrainTimeout,
		"spec.rebootTimeout": s.RebootTimeout,
		"spec.settleTime":    s.SettleTime,
	}
	if s.Hooks != nil {
		fields["spec.hooks.timeout"] = s.Hooks.Timeout
	}
	if s.WaitForPods != nil {
		fields["spec.waitForPods.timeout"] = s.WaitForPods.Timeout
	}
	s.PowerCycle.durations("spec.", fields)
	return durationErrs(fields)
}
