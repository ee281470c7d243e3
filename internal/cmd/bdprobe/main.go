// Command bdprobe exercises the backdoor from inside `vmxsim run`, for the
// trap tests and `make bench`. It is never shipped.
//
//	bdprobe cpuid                    print the hypervisor signature and leaf 0x40000010
//	bdprobe getversion N             N GETVERSION calls; prints ns per call
//	bdprobe trapcpu N                N GETVERSION calls; prints this process's own CPU (user + system) per call in ns
//	bdprobe rpci N REQUEST           N round trips on one RPCI channel; prints the median in ns
//	bdprobe hgfsraw read|write PATH BYTES  move BYTES of the HGFS file PATH (SHARE/NAME) with the client alone on one channel; prints ns and the request size
//	bdprobe hold                     open an RPCI channel, start a message, print "holding", block
//	bdprobe seccomp                  try what the trap's seccomp filter forbids; print the errors
//	bdprobe vsock                    exercise the vsock trap's emulation; print each result
//	bdprobe tclo                     serve TCLO as app toolbox (Echo ARGS answers ARGS) until killed
//	bdprobe crash                    dereference nil (Go's SIGSEGV must reach the runtime)
//	bdprobe exec N CMD ARGS...       run CMD N times; print the median wall time in ns
//
// Each mode first checks backdoor.Detect, so outside the trap it says "not
// a VMware VM" instead of faulting.
package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/govmtools/govmtools/hgfs"
	"github.com/govmtools/govmtools/internal/hgfswork"
	"github.com/govmtools/govmtools/rpc"
	"github.com/govmtools/govmtools/rpc/backdoor"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: bdprobe cpuid|getversion N|rpci N REQUEST|hold|seccomp")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "seccomp":
		os.Exit(seccompProbe())
	case "vsock":
		os.Exit(vsockProbe())
	case "crash":
		var p *int
		println(*p)
	case "exec":
		os.Exit(execLoop())
	}
	if err := backdoor.Detect(); err != nil {
		fmt.Fprintln(os.Stderr, "bdprobe:", err)
		os.Exit(3)
	}
	switch os.Args[1] {
	case "cpuid":
		fmt.Println(cpuidReport())
	case "getversion":
		n := arg(2)
		start := time.Now()
		for range n {
			if v, _, err := backdoor.GetVersion(backdoor.Native{}); err != nil || v != backdoor.Version {
				fmt.Fprintln(os.Stderr, "bdprobe: GETVERSION:", v, err)
				os.Exit(1)
			}
		}
		fmt.Println(time.Since(start).Nanoseconds() / int64(n))
	case "trapcpu":
		n := arg(2)
		before := ownCPU()
		for range n {
			if v, _, err := backdoor.GetVersion(backdoor.Native{}); err != nil || v != backdoor.Version {
				fmt.Fprintln(os.Stderr, "bdprobe: GETVERSION:", v, err)
				os.Exit(1)
			}
		}
		fmt.Println((ownCPU() - before).Nanoseconds() / int64(n))
	case "rpci":
		n := arg(2)
		// A persistent channel, reopened (and the call retried once) after
		// a failure, as rpc.Client does.
		c := &rpc.Client{Dial: func(context.Context) (rpc.Channel, error) {
			return backdoor.Open(backdoor.Native{}, backdoor.ProtoRPCI)
		}}
		req := []byte(os.Args[3])
		var ds []time.Duration
		for range n {
			start := time.Now()
			if _, err := c.Call(context.Background(), req); err != nil {
				fmt.Fprintln(os.Stderr, "bdprobe:", err)
				os.Exit(1)
			}
			ds = append(ds, time.Since(start))
		}
		slices.Sort(ds)
		fmt.Println(ds[len(ds)/2].Nanoseconds())
	case "hgfsraw":
		os.Exit(hgfsRaw())
	case "tclo":
		mux := &rpc.Mux{}
		mux.HandleFunc("Echo", func(ctx context.Context, args []byte) ([]byte, error) { return args, nil })
		loop := &rpc.Loop{App: "toolbox", Mux: mux, Dial: func(context.Context) (rpc.Channel, error) {
			return backdoor.Open(backdoor.Native{}, backdoor.ProtoTCLO)
		}, RestartDelay: 10 * time.Millisecond}
		loop.Run(context.Background())
	case "hold":
		// Announce a 100-byte message and send one word of it: the VMX
		// now holds a half-received message on a channel this process
		// owns.
		ch, err := backdoor.Open(backdoor.Native{}, backdoor.ProtoRPCI)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bdprobe:", err)
			os.Exit(1)
		}
		holdHalfSent(ch)
		fmt.Println("holding")
		for {
			backdoor.GetVersion(backdoor.Native{})
		}
	default:
		fmt.Fprintln(os.Stderr, "bdprobe: unknown mode", os.Args[1])
		os.Exit(2)
	}
}

// hgfsRaw is the hgfsraw mode.
func hgfsRaw() int {
	if len(os.Args) < 5 || (os.Args[2] != "read" && os.Args[2] != "write") {
		fmt.Fprintln(os.Stderr, "usage: bdprobe hgfsraw read|write PATH BYTES")
		return 2
	}
	size := arg(4)
	ctx := context.Background()
	dial := func(context.Context) (rpc.Channel, error) {
		return backdoor.Open(backdoor.Native{}, backdoor.ProtoRPCI)
	}
	c, err := hgfs.New(ctx, hgfs.Config{Transport: hgfs.NewRPCTransport(dial, 1, nil)})
	if err != nil {
		fmt.Fprintln(os.Stderr, "bdprobe:", err)
		return 1
	}
	defer c.Close(ctx)
	d, err := hgfswork.RawIO(ctx, c, os.Args[3], int64(size), os.Args[2] == "write")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bdprobe:", err)
		return 1
	}
	sz := c.Sizes()
	chunk := sz.MaxRead
	if os.Args[2] == "write" {
		chunk = sz.MaxWrite
	}
	fmt.Println(d.Nanoseconds(), chunk)
	return 0
}

// ownCPU is this process's user + system time, all threads.
func ownCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		fmt.Fprintln(os.Stderr, "bdprobe: getrusage:", err)
		os.Exit(1)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func execLoop() int {
	n := arg(2)
	if len(os.Args) < 4 {
		fmt.Fprintln(os.Stderr, "bdprobe: exec needs a command")
		return 2
	}
	var ds []time.Duration
	for range n {
		start := time.Now()
		out, err := exec.Command(os.Args[3], os.Args[4:]...).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "bdprobe: %s: %v\n%s", os.Args[3], err, out)
			return 1
		}
		ds = append(ds, time.Since(start))
	}
	slices.Sort(ds)
	fmt.Println(ds[len(ds)/2].Nanoseconds())
	return 0
}

func arg(i int) int {
	if len(os.Args) <= i {
		fmt.Fprintln(os.Stderr, "bdprobe: missing count")
		os.Exit(2)
	}
	n, err := strconv.Atoi(os.Args[i])
	if err != nil || n <= 0 {
		fmt.Fprintln(os.Stderr, "bdprobe: bad count", os.Args[i])
		os.Exit(2)
	}
	return n
}
