// Package e2e holds the end-to-end tests: they build the real binaries,
// run them against `vmxsim serve` (and, in later tiers, under the ptrace
// trap), and assert on what the simulated host saw. It has no non-test
// code beyond this comment.
package e2e
