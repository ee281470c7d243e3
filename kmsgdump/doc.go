// Package kmsgdump puts the kernel's own account of a crash, and live
// warnings, into the VM's vmware.log, where the person debugging the VM
// looks first. It owns:
//
//   - saved records: pstore dmesg records (dmesg-ramoops-*, dmesg-efi-*,
//     any backend's dmesg-*, compressed .enc.z ones, and dumps split into
//     parts) and kdump's vmcore-dmesg.txt, shipped at the next boot with a
//     header naming the record, its time and the boot it came from, then
//     archived or removed; a state directory journals every line so that a
//     kill in the middle neither loses nor repeats one (see Store and
//     "None lost, none twice" below);
//   - live streaming of /dev/kmsg: records at or above a level (default
//     warning), pattern triggers (Oops, BUG:, kernel panic, hung tasks, OOM,
//     WARNING: CPU) that also ship the records around them, a rate limit
//     with "N lines suppressed" summaries, and ring overruns reported as
//     lost-record counts;
//   - the line format of Photon's kernel dumper: one `log <line>` RPCI per
//     line of at most 1020 bytes (longer lines are split), sent over one
//     persistent RPCI channel that is reopened on failure; while the host is
//     unreachable live lines wait in a bounded queue, and what a full queue
//     drops is counted and announced.
//
// The record codec is the pure package kmsgdump/kmsg. Dumper.Run is the
// whole daemon; cmd/vmware-kmsgdump is its main.
//
// # None lost, none twice
//
// A line is lost if it is counted as shipped before the host has it, and
// repeated if the host logs it and the guest dies before counting it. The
// first is easy: progress (saved records) and the cursor (/dev/kmsg) move
// only once the host has the line, and shipped records are removed only
// after state.json says so. The second is the hard one: the "log" RPCI is
// not idempotent and the guest cannot read vmware.log, so after a kill it
// must learn from the VMX itself whether the line in flight was logged.
// The backdoor message protocol offers exactly one place where it can:
//
//   - the VMX handles an RPCI request when its last byte arrives, before
//     the call that carried it returns, and posts the reply on the
//     channel, where it waits until the guest acknowledges it
//     (RECVSTATUS): logging the line and posting its reply happen in one
//     step on the host;
//   - a backdoor channel is a number and a cookie that any guest process
//     may present; the VMX cannot tell guest processes apart, so it keeps
//     the channel, and the waiting reply, when the process that opened it
//     dies, until the channel is closed, the guest is reset or a
//     checkpoint invalidates it.
//
// So every counted line is journaled in this order (Shipper.Log and the
// Flight it is given): the store's inflight block names the line and the
// channel's token; the line is sent; as soon as the send returns, progress
// or the cursor counts it; only then is the reply collected and
// acknowledged. A restart that finds an uncounted line in the inflight
// block resumes the channel by its token and asks for the reply
// (Shipper.Settle): a reply waiting means the VMX logged the line, which
// is then counted; nothing waiting means it never arrived whole, and it is
// sent again; then the dead process's channel is closed. A kill at any
// instant therefore ships every line exactly once: before the send the
// VMX has nothing; after it, the reply says so; after the count, the
// line is not sent again.
//
// What the protocol cannot give, and what happens then:
//
//   - Over unix:DIR (vmxsim serve) and vsock the channel is a stream
//     that dies with the process, and the VMX's side of it with it: the
//     restart cannot ask. The line in flight is sent again after a
//     "kmsgdump: resume ..." note that says it may appear twice; at most
//     that one line per kill repeats. This is why the daemon, in auto
//     mode, ships over the backdoor first (as open-vm-tools' own logger
//     keeps a backdoor channel).
//   - The same holds when the channel is gone by the time of the restart
//     (a guest reset, a checkpoint such as suspend, snapshot or vMotion,
//     a VMX restart), or the VMX gave the channel no cookie (then its
//     number may be reused, and it is never resumed).
//   - The counters are rewritten in the page cache, which survives a
//     killed process but not a machine crash: after a power loss or a
//     kernel panic during shipping they may be older, and more lines
//     repeat; none is lost.
//   - A live record longer than one vmware.log line (over 1020 bytes) is
//     journaled at its last line: a kill between its lines repeats the
//     earlier ones. Notes of kmsgdump's own (resume notes, suppressed and
//     dropped counts) are not journaled.
//
// vmxsim run models the VMX's dead-channel behaviour with
// --keep-dead-channels (by default it closes a dead process's channels);
// the end-to-end tests kill the binary at every moment of a line's
// journey, and at random, under both.
//
// # Concurrency
//
// Dumper.Run starts a reader of the kernel log and one shipping goroutine
// and returns after both have ended. Only the shipping goroutine talks to
// the host, so lines reach vmware.log in order.
package kmsgdump
