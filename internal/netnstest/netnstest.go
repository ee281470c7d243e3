// Package netnstest creates and deletes the network namespaces that the
// guest info end-to-end tests and benchmarks build their scenes in (a VM
// NIC stood in by a veth end, container bridges, a thousand interfaces).
// It drives iproute2's `ip` and needs root. Only documentation prefixes
// are used in those scenes (198.51.100.0/24, 203.0.113.0/24,
// 2001:db8::/32); nothing here touches the machine's own namespace
// beyond creating and deleting the named namespaces and their
// /etc/netns/NAME directories.
package netnstest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// Available reports whether namespaces can be made here: root and `ip`.
func Available() (bool, string) {
	if os.Geteuid() != 0 {
		return false, "root (run the tests as root)"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return false, "iproute2's ip (apt-get install iproute2)"
	}
	return true, ""
}

// NS is a network namespace created by Create.
type NS struct {
	Name string
}

// Create makes a new namespace with its loopback up. A stale namespace of
// the same name (left by a killed run) is deleted first.
func Create(name string) (*NS, error) {
	exec.Command("ip", "netns", "del", name).Run()
	if err := run(nil, "ip", "netns", "add", name); err != nil {
		return nil, err
	}
	ns := &NS{Name: name}
	if err := ns.IP("link", "set", "lo", "up"); err != nil {
		ns.Delete()
		return nil, err
	}
	return ns, nil
}

// Path is the namespace's bind mount, for setns or netns.GetFromPath.
func (n *NS) Path() string { return "/run/netns/" + n.Name }

// IP runs `ip -n NAME args...`.
func (n *NS) IP(args ...string) error {
	return run(nil, "ip", append([]string{"-n", n.Name}, args...)...)
}

// Batch runs many ip commands (one per line, without the leading "ip")
// in one process: `ip -n NAME -batch -`.
func (n *NS) Batch(lines []string) error {
	return run(strings.NewReader(strings.Join(lines, "\n")+"\n"), "ip", "-n", n.Name, "-batch", "-")
}

// Command returns a command that runs inside the namespace
// (`ip netns exec NAME ...`).
func (n *NS) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// Delete removes the namespace, and with it every interface inside, and
// its /etc/netns directory if SetResolvConf made one.
func (n *NS) Delete() error {
	os.RemoveAll(n.etcDir())
	return run(nil, "ip", "netns", "del", n.Name)
}

func (n *NS) etcDir() string { return "/etc/netns/" + n.Name }

// SetResolvConf gives the namespace its own resolv.conf: `ip netns exec`
// bind-mounts /etc/netns/NAME/resolv.conf over /etc/resolv.conf for what
// it runs, so programs in the namespace read content instead of the
// machine's DNS configuration. Delete removes it.
func (n *NS) SetResolvConf(content string) error {
	if err := os.MkdirAll(n.etcDir(), 0o755); err != nil {
		return err
	}
	return os.WriteFile(n.etcDir()+"/resolv.conf", []byte(content), 0o644)
}

func run(stdin *strings.Reader, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	if stdin != nil {
		cmd.Stdin = stdin
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

// Scene is the container-host scene of the guest info tests, in namespace
// VM with a second namespace Peer for the far ends of the veths.
type Scene struct {
	VM, Peer *NS
}

// VM NIC facts of the scene.
const (
	SceneMAC       = "00:50:56:aa:bb:01"
	SceneIPv4      = "198.51.100.10/24"
	SceneVIP       = "198.51.100.200/32"
	SceneIPv6      = "2001:db8::10/64"
	SceneGateway   = "198.51.100.1"
	SceneBridgeNet = "203.0.113.1/24"
	// SceneResolvConf is the VM namespace's resolv.conf (SetResolvConf).
	SceneResolvConf = "nameserver 198.51.100.53\nnameserver 2001:db8::53\nsearch example.test corp.example.test\n"
)

// NewScene builds the scene: in VM, eth0 is a veth end with a VMware MAC,
// an IPv4 /24, a /32 VIP (keepalived style), an IPv6 address and the
// default route; docker0 is a bridge with an address and a port vethc0
// whose peer sits in Peer; programs started in VM read SceneResolvConf as
// /etc/resolv.conf. prefix names the namespaces.
func NewScene(prefix string) (*Scene, error) {
	vm, err := Create(prefix + "-vm")
	if err != nil {
		return nil, err
	}
	peer, err := Create(prefix + "-peer")
	if err != nil {
		vm.Delete()
		return nil, err
	}
	s := &Scene{VM: vm, Peer: peer}
	if err := vm.SetResolvConf(SceneResolvConf); err != nil {
		s.Delete()
		return nil, err
	}
	steps := []string{
		"link add eth0 type veth peer name up0 netns " + peer.Name,
		"link set eth0 address " + SceneMAC,
		"addr add " + SceneIPv4 + " dev eth0",
		"addr add " + SceneVIP + " dev eth0",
		"addr add " + SceneIPv6 + " dev eth0 nodad",
		"link set eth0 up",
		"route add default via " + SceneGateway + " dev eth0",
		"link add docker0 type bridge",
		"addr add " + SceneBridgeNet + " dev docker0",
		"link set docker0 up",
		"link add vethc0 type veth peer name ceth0 netns " + peer.Name,
		"link set vethc0 master docker0",
		"link set vethc0 up",
	}
	if err := vm.Batch(steps); err != nil {
		s.Delete()
		return nil, err
	}
	if err := peer.Batch([]string{"link set up0 up", "link set ceth0 up", "addr add 203.0.113.2/24 dev ceth0"}); err != nil {
		s.Delete()
		return nil, err
	}
	return s, nil
}

// AddInterfaces adds n up interfaces of container kinds to the VM
// namespace: veths whose peers sit in Peer, and every fifth a bridge;
// every fifth carries a /32 and an IPv6 /128. (dummy would be cheaper,
// but not every kernel has it.)
func (s *Scene) AddInterfaces(n int) error {
	var lines []string
	for i := range n {
		name := fmt.Sprintf("ve%04d", i)
		if i%5 == 4 {
			name = fmt.Sprintf("br%04d", i)
			lines = append(lines, "link add "+name+" type bridge")
		} else {
			lines = append(lines, fmt.Sprintf("link add %s type veth peer name vp%04d netns %s", name, i, s.Peer.Name))
		}
		lines = append(lines, "link set "+name+" up")
		if i%5 == 0 {
			lines = append(lines,
				fmt.Sprintf("addr add 203.0.113.%d/32 dev %s", 10+i/5%240, name),
				fmt.Sprintf("addr add 2001:db8:1::%x/128 dev %s nodad", i, name))
		}
	}
	return s.VM.Batch(lines)
}

// Delete removes both namespaces.
func (s *Scene) Delete() {
	s.VM.Delete()
	s.Peer.Delete()
}
