// Package rpc is the GuestRPC model shared by every govmtools binary: the
// Channel abstraction over which the guest talks to the VMX, the RPCI client
// (guest asks, host answers "1 "/"0 "), and the TCLO loop (host commands,
// guest answers "OK "/"ERROR ") dispatching to a Mux of handlers.
//
// # Transports
//
// This package knows no transport. A Channel is opened by a function the
// caller supplies; rpc/transport is the only package that knows them all
// (vsock, backdoor, and the unix sockets of vmxsim). Channels come in two
// shapes, and the TCLO loop runs each the way open-vm-tools does:
//
//   - polling channels (the backdoor): the guest sends its previous reply,
//     possibly empty, then receives; an empty receive means no command, and
//     the loop backs off from 10 ms to 100 ms;
//   - event channels (vsock, vmxsim's unix sockets), which implement
//     EventChannel: the host sends first, Receive blocks, and the guest
//     sends a PING packet every second once it has answered a command.
//
// # Concurrency
//
// A Channel is used by one goroutine at a time, except that Close may be
// called concurrently to unblock a Receive. Client serializes its calls
// with a mutex. Loop.Run owns every goroutine it starts and returns only
// after they have ended.
package rpc
