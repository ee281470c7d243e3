// Package hgfs is the guest's HGFS client: it opens a session with the
// host's shared-folders server, negotiates the packet size, and offers
// path-based operations (getattr, setattr, readdir, mkdir, remove,
// rename, symlink, statfs) and file handles (open, read, write, close)
// that the FUSE file system (hgfs/fusefs) and vmware-hgfsclient build on.
// It owns the one HGFS-status to errno mapping (Errno).
//
// # Transport
//
// Packets travel as the RPCI command "f " + packet; the reply is
// "1 " + packet, and "0 " means shared folders are disabled on the host.
// RPCTransport carries them over a pool of RPCI channels opened by any
// rpc.Dialer (vmxsim's unix sockets today, the backdoor on a VM), so
// several requests are in flight at once where the VMX allows several
// channels. The pieces of one large write go out on several channels at
// once, except over channels whose calls keep the CPU busy until the
// host answers (rpc.CPUHolder: the backdoor), where they go out one
// after the other. Requests never exceed the VMX's 64 KiB message cap, whatever
// packet size the host negotiated, so large writes cannot fail the way
// they do with the C client (open-vm-tools#437).
//
// # Recovery
//
// A STALE_SESSION reply (the host restarted its HGFS server, shared
// folders were disabled and re-enabled, the VM resumed) makes the client
// create a new session and retry the request once. A file whose handle
// the host no longer knows (INVALID_HANDLE, or a handle from an older
// session) is reopened by path, without truncation, and the operation
// retried once. Nothing needs a remount.
//
// # Bad input
//
// Every reply is checked against the bytes received: a malformed or
// truncated reply fails that one operation with an error wrapping
// ErrMalformed (EIO at the FUSE edge) and a log line; the session and
// the other operations carry on.
//
// # Concurrency
//
// A Client and its Files are safe for concurrent use.
package hgfs
