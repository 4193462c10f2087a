// Package policy checks NodeCyclePolicies and reports what is wrong with
// one in its Valid condition and a Warning Event.
package policy
