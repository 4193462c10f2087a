// Package powersettings turns a NodeCycle's power-cycle settings into a provider
// and the machine behind its node: credentials from their Secret, one
// provider per policy.
package powersettings
