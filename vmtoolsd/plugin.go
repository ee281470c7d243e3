package vmtoolsd

import (
	"context"

	"github.com/govmtools/govmtools/rpc"
)

// Plugin is one feature of the service. New calls Plug once, and the
// plugin registers on r, by name, each thing it does: commands,
// Set_Option handling, capabilities, reset work, a long-running part.
// Registration is explicit so that a misspelt method is a compile error,
// not a feature silently left out; each plugin package asserts its type
// at compile time (var _ vmtoolsd.Plugin = (*T)(nil)).
type Plugin interface{ Plug(r *Registry) }

// Registry collects what the plugins do, in plugin order.
type Registry struct {
	mux      *rpc.Mux
	options  []func(ctx context.Context, name, value string) bool
	caps     []func() [][]byte
	features []func() []Feature
	resets   []func(ctx context.Context)
	runners  []runner
}

type runner struct {
	name string
	run  func(ctx context.Context) error
}

// Mux is the service's TCLO command table, for the plugin's commands.
func (r *Registry) Mux() *rpc.Mux { return r.mux }

// OnOption adds a Set_Option handler; it reports whether it understood
// the option (the reply is "OK " either way, as vmtoolsd's).
func (r *Registry) OnOption(f func(ctx context.Context, name, value string) bool) {
	r.options = append(r.options, f)
}

// Capabilities adds the RPCIs to send on Capabilities_Register, exact
// bytes included (old-style capabilities).
func (r *Registry) Capabilities(f func() [][]byte) { r.caps = append(r.caps, f) }

// Features adds new-style capabilities (tools.capability.features).
func (r *Registry) Features(f func() []Feature) { r.features = append(r.features, f) }

// OnReset adds work to run after every reset the VMX sends (caches are
// dropped and everything is re-sent, as vmtoolsd's RESET signal does).
func (r *Registry) OnReset(f func(ctx context.Context)) { r.resets = append(r.resets, f) }

// Go adds a long-running part, run by Service.Run until its context
// ends; name labels its errors.
func (r *Registry) Go(name string, run func(ctx context.Context) error) {
	r.runners = append(r.runners, runner{name, run})
}
