// Package systemd owns govmtools' integration with systemd: the
// sd_notify protocol (READY=1, STATUS=, WATCHDOG=1, STOPPING=1) over the
// NOTIFY_SOCKET datagram socket, a watchdog that is fed only while the
// daemon shows signs of life, and the unit files the binaries ship with
// (vmtoolsd.service, vmware-kmsgdump.service, mnt-hgfs.mount and
// mnt-hgfs.automount; one file per unit, installed to
// /usr/lib/systemd/system, each checked by a test that runs
// systemd-analyze verify or parses it).
//
// The shape follows mdlayher/sdnotify rather than go-systemd's daemon
// package: Open takes the socket path, so nothing here reads or changes
// the process environment (mains pass os.Getenv values in), and a nil
// *Notifier is a valid no-op for a daemon not started by systemd.
// See sd_notify(3) and systemd.service(5).
package systemd

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Notifier sends sd_notify messages. A nil *Notifier does nothing.
type Notifier struct {
	mu   sync.Mutex
	conn *net.UnixConn
}

// Open connects to the notification socket at path (NOTIFY_SOCKET; a
// leading '@' means the abstract namespace). An empty path returns a nil
// Notifier and no error: not running under systemd.
func Open(path string) (*Notifier, error) {
	if path == "" {
		return nil, nil
	}
	addr := &net.UnixAddr{Name: path, Net: "unixgram"}
	if strings.HasPrefix(path, "@") {
		addr.Name = "\x00" + path[1:]
	}
	c, err := net.DialUnix("unixgram", nil, addr)
	if err != nil {
		return nil, fmt.Errorf("systemd: notify socket %s: %w", path, err)
	}
	return &Notifier{conn: c}, nil
}

// Notify sends one message (newline-separated assignments).
func (n *Notifier) Notify(state string) error {
	if n == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn == nil {
		return errors.New("systemd: notifier closed")
	}
	n.conn.SetWriteDeadline(time.Now().Add(time.Second))
	if _, err := n.conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("systemd: notify: %w", err)
	}
	return nil
}

// Ready says start-up is complete, with a status line.
func (n *Notifier) Ready(status string) error {
	return n.Notify("READY=1\nSTATUS=" + oneLine(status))
}

// Status sets the status line systemctl status shows.
func (n *Notifier) Status(status string) error { return n.Notify("STATUS=" + oneLine(status)) }

// Watchdog feeds the watchdog.
func (n *Notifier) Watchdog() error { return n.Notify("WATCHDOG=1") }

// Stopping says the daemon is shutting down.
func (n *Notifier) Stopping() error { return n.Notify("STOPPING=1") }

// Close closes the socket.
func (n *Notifier) Close() error {
	if n == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn == nil {
		return nil
	}
	err := n.conn.Close()
	n.conn = nil
	return err
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }

// WatchdogInterval interprets WATCHDOG_USEC and WATCHDOG_PID (pass their
// values and this process's pid): the watchdog timeout, or 0 when no
// watchdog is asked of this process.
func WatchdogInterval(usec, pid string, self int) (time.Duration, error) {
	if usec == "" {
		return 0, nil
	}
	if pid != "" {
		p, err := strconv.Atoi(pid)
		if err != nil {
			return 0, fmt.Errorf("systemd: WATCHDOG_PID=%q: %w", pid, err)
		}
		if p != self {
			return 0, nil
		}
	}
	u, err := strconv.ParseInt(usec, 10, 64)
	if err != nil || u <= 0 {
		return 0, fmt.Errorf("systemd: WATCHDOG_USEC=%q is not a positive number", usec)
	}
	return time.Duration(u) * time.Microsecond, nil
}
