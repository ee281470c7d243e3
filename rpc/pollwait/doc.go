// Package pollwait sleeps between the idle polls of a backdoor TCLO
// channel, and times the heartbeat PINGs of a vsock or unix:DIR one,
// without waking the Go runtime's other threads.
//
// A Go timer that fires every 100 ms (the idle poll cadence of
// open-vm-tools' rpcin.c, docs/architecture.md) wakes more than the
// thread that runs the poll: sysmon sleeps until the next timer is due
// and then once more for its 10 ms tick, and a system call made while
// sysmon sleeps wakes it too. Measured on an idle vmtoolsd under the trap
// that is about three wake-ups per poll on top of the poll itself.
//
// On Linux a Waiter instead arms a timerfd that sits in the runtime's
// network poller: the thread parked in epoll_wait is the only one the
// expiry wakes, and the timer is armed and read with raw system calls,
// which the scheduler (and so sysmon) never sees. No Go timer is pending
// while the channel is idle, so sysmon stays in its long sleep. Elsewhere,
// or when the timerfd cannot be had, a Waiter falls back to Go timers.
//
// The heartbeat uses a Waiter's Set and Wait: one goroutine waits for the
// PING's deadline while the one that answers the VMX's pings moves it
// back with each reply's PING (a raw timerfd_settime), so the alarm rings
// only when the VMX falls silent. A Go timer moved later would still
// wake its P and sysmon at the time it was first due. TimerAlarm is the
// same on Go timers, for testing/synctest.
package pollwait
