// Package deptest enforces Pulsewire's import rules (ARCHITECTURE.md,
// "Imports point inward") as a test, in the manner of tailscale's
// tstest/deptest: each rule names the packages it governs, what they must not
// import, and why.
package deptest
