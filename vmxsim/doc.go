// Package vmxsim is the simulated VMX's core: the host side of GuestRPC,
// so that every govmtools binary, and Debian's open-vm-tools beside them,
// can be run and tested on a machine that is not a VMware VM.
//
// One Core models what the VMX knows about its guest: guestinfo variables,
// vmware.log in the VMX's line format, tools version and capabilities,
// decoded SetGuestInfo state, power state and fault injection, and it
// answers the RPCI commands that carry them. The protocols live in
// subpackages, each importing the wire codecs and the small interface of
// package vmx:
//
//   - tclo: the TCLO driver (reset, ping, Set_Option, the heartbeat);
//   - hgfsd: the HGFS (shared folders) server behind the "f" RPCI;
//   - quiesce: the host half of quiesced snapshots (vmbackup);
//   - backdoor: the backdoor ports and message channels the trap serves;
//   - vsphere: the vSphere front end (vcsim) that mirrors the core;
//   - trap: the ptrace supervisor of `vmxsim run`;
//   - sim: the assembly of all of them that `vmxsim serve` and `vmxsim
//     run` start.
//
// The core is reached three ways:
//   - in process, over net.Pipe connections (Core.ServeRPCIConn and
//     Core.ServeTCLOConn), for package tests;
//   - by Server, on the unix sockets DIR/tclo.sock and DIR/rpci.sock, which
//     speak the vsock DataMap framing, for end-to-end tests of the real
//     binaries with --rpc unix:DIR; DIR/ctl.sock is the control API, whose
//     client is Ctl;
//   - through the ptrace backdoor trap (vmxsim run), which plugs message
//     channels into the same core, and connects the programs' vsock
//     streams to DIR/vsock.sock (vsock.go), where a preamble carries their
//     vsock addresses: the source port tells privileged callers apart.
//
// vmxsim is an independent host-side implementation: it shares only the
// pure wire codecs with the guest side (rpc/datamap and the like) and never
// imports guest logic, so a codec bug cannot hide by symmetry. A test in
// internal/testutil enforces this.
//
// # Concurrency
//
// Core is safe for concurrent use; its state is guarded by Core.mu, which
// is never held while talking to a guest or calling into the TCLO driver.
// Server.Serve owns every goroutine it starts and returns after they have
// ended.
package vmxsim
