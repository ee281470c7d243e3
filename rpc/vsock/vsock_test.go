package vsock

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/govmtools/govmtools/rpc"
	"github.com/govmtools/govmtools/rpc/sockchan"
	"golang.org/x/sys/unix"
)

// fakeNet scripts the errors of bind and connect per source port. A
// successful connect hands out one end of a unix socketpair; the other end
// goes to peers, standing in for the VMX. No AF_VSOCK socket is opened.
type fakeNet struct {
	t         *testing.T
	bindErr   map[uint32][]error // popped per attempt
	connErr   map[uint32][]error
	ops       []string
	peers     chan net.Conn
	open      int
	maxOpen   int
	socketErr error
}

func newFakeNet(t *testing.T) *fakeNet {
	return &fakeNet{t: t, bindErr: map[uint32][]error{}, connErr: map[uint32][]error{}, peers: make(chan net.Conn, 4)}
}

func (f *fakeNet) socket() (Socket, error) {
	if f.socketErr != nil {
		return nil, f.socketErr
	}
	f.open++
	f.maxOpen = max(f.maxOpen, f.open)
	return &fakeSocket{net: f, port: PortAny}, nil
}

func pop(m map[uint32][]error, k uint32) error {
	if len(m[k]) == 0 {
		return nil
	}
	e := m[k][0]
	m[k] = m[k][1:]
	return e
}

type fakeSocket struct {
	net    *fakeNet
	port   uint32
	conn   net.Conn
	closed bool
}

func (s *fakeSocket) Bind(port uint32) error {
	s.net.ops = append(s.net.ops, fmt.Sprintf("bind %d", port))
	if err := pop(s.net.bindErr, port); err != nil {
		return err
	}
	s.port = port
	return nil
}

func (s *fakeSocket) Connect(ctx context.Context, cid, port uint32) error {
	s.net.ops = append(s.net.ops, fmt.Sprintf("connect %d->%d:%d", s.port, cid, port))
	if err := pop(s.net.connErr, s.port); err != nil {
		return err
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	mine, err := fileConn(fds[0])
	if err != nil {
		return err
	}
	theirs, err := fileConn(fds[1])
	if err != nil {
		return err
	}
	s.conn = mine
	s.net.peers <- theirs
	return nil
}

func fileConn(fd int) (net.Conn, error) {
	f := os.NewFile(uintptr(fd), "socketpair")
	defer f.Close()
	return net.FileConn(f)
}

func (s *fakeSocket) SetBuffers(n int) error { return nil }

func (s *fakeSocket) Conn() (net.Conn, error) {
	s.net.open--
	return s.conn, nil
}

func (s *fakeSocket) Close() error {
	if !s.closed {
		s.closed = true
		s.net.open--
	}
	return nil
}

func (f *fakeNet) dialer() *Dialer {
	return &Dialer{Socket: f.socket, Sleep: func(d time.Duration) { f.ops = append(f.ops, "sleep "+d.String()) }}
}

func TestPrivilegedPortWalk(t *testing.T) {
	f := newFakeNet(t)
	f.bindErr[1023] = []error{unix.EADDRINUSE}
	f.connErr[1022] = []error{unix.EINTR, unix.ENOBUFS, unix.ECONNRESET}
	c, priv, err := f.dialer().DialRPCI(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !priv {
		t.Fatal("not privileged")
	}
	want := "bind 1023|bind 1022|connect 1022->0:976|bind 1022|connect 1022->0:976|sleep 1ms|bind 1022|connect 1022->0:976|bind 1021|connect 1021->0:976"
	if got := strings.Join(f.ops, "|"); got != want {
		t.Fatalf("ops:\n got %s\nwant %s", got, want)
	}
	if f.open != 0 {
		t.Fatalf("%d sockets leaked", f.open)
	}

	// The connection carries DataMap packets end to end.
	peer := <-f.peers
	defer peer.Close()
	guest, host := sockchan.New(c), sockchan.New(peer)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() {
		req, err := host.Receive(ctx)
		if err != nil || string(req) != "info-get guestinfo.k" {
			t.Errorf("host got %q %v", req, err)
		}
		host.Send(ctx, []byte("1 v"))
	})
	client := &rpc.Client{Dial: func(context.Context) (rpc.Channel, error) { return guest, nil }}
	if got, err := client.CallString(ctx, "info-get guestinfo.k"); err != nil || got != "v" {
		t.Fatalf("call: %q %v", got, err)
	}
	wg.Wait()
}

func TestUnprivilegedFallback(t *testing.T) {
	f := newFakeNet(t)
	f.bindErr[1023] = []error{unix.EACCES}
	c, priv, err := f.dialer().DialRPCI(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if priv {
		t.Fatal("claims privileged after EACCES")
	}
	if got, want := strings.Join(f.ops, "|"), "bind 1023|connect 4294967295->0:976"; got != want {
		t.Fatalf("ops %s, want %s", got, want)
	}
}

func TestConnResetLimit(t *testing.T) {
	f := newFakeNet(t)
	for p := uint32(1023); p > 1000; p-- {
		f.connErr[p] = []error{unix.ECONNRESET}
	}
	_, _, err := f.dialer().DialRPCI(t.Context())
	if !errors.Is(err, ErrConnResets) || !errors.Is(err, unix.ECONNRESET) {
		t.Fatalf("err = %v", err)
	}
	// 1 + MaxConnResets attempts, each on a lower port.
	if n := strings.Count(strings.Join(f.ops, "|"), "connect"); n != MaxConnResets+1 {
		t.Fatalf("%d connects, want %d", n, MaxConnResets+1)
	}
	if f.open != 0 {
		t.Fatalf("%d sockets leaked", f.open)
	}
}

func TestNoBufsLimitAndFatalErrors(t *testing.T) {
	f := newFakeNet(t)
	f.connErr[1023] = []error{unix.ENOBUFS, unix.ENOBUFS, unix.ENOBUFS, unix.ENOBUFS, unix.ENOBUFS, unix.ENOBUFS}
	_, _, err := f.dialer().DialRPCI(t.Context())
	if !errors.Is(err, unix.ENOBUFS) || strings.Count(strings.Join(f.ops, "|"), "sleep") != MaxNoBufs {
		t.Fatalf("err = %v, ops %v", err, f.ops)
	}

	f = newFakeNet(t)
	f.connErr[1023] = []error{unix.ETIMEDOUT}
	if _, _, err := f.dialer().DialRPCI(t.Context()); !errors.Is(err, unix.ETIMEDOUT) {
		t.Fatalf("ETIMEDOUT: %v", err)
	}

	f = newFakeNet(t)
	for p := uint32(PrivilegedPortMin); p <= PrivilegedPortMax; p++ {
		f.bindErr[p] = []error{unix.EADDRINUSE}
	}
	if _, _, err := f.dialer().DialRPCI(t.Context()); err == nil || !strings.Contains(err.Error(), "no free privileged source port") {
		t.Fatalf("all ports busy: %v", err)
	}

	f = newFakeNet(t)
	f.socketErr = unix.EAFNOSUPPORT
	if _, err := f.dialer().DialTCLO(t.Context()); !errors.Is(err, unix.EAFNOSUPPORT) {
		t.Fatalf("no vsock: %v", err)
	}
}

func TestDialTCLOPlainConnect(t *testing.T) {
	f := newFakeNet(t)
	c, err := f.dialer().DialTCLO(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	(<-f.peers).Close()
	if got := strings.Join(f.ops, "|"); got != "connect 4294967295->0:975" {
		t.Fatalf("ops %s", got)
	}
}
