// Package kmsgdump puts the kernel's own account of a crash, and live
// warnings, into the VM's vmware.log, where the person debugging the VM
// looks first. It owns:
//
//   - saved records: pstore dmesg records (dmesg-ramoops-*, dmesg-efi-*,
//     any backend's dmesg-*, compressed .enc.z ones, and dumps split into
//     parts) and kdump's vmcore-dmesg.txt, shipped at the next boot with a
//     header naming the record, its time and the boot it came from, then
//     archived or removed; a state directory records per-record progress so
//     that a crash or kill in the middle neither loses nor repeats a line
//     (see Store);
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
// # Concurrency
//
// Dumper.Run starts a reader of the kernel log and one shipping goroutine
// and returns after both have ended. Only the shipping goroutine talks to
// the host, so lines reach vmware.log in order.
package kmsgdump
