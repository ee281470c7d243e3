package vmbackup

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// GuardCommand is the hidden vmtoolsd subcommand that runs GuardMain.
const GuardCommand = "__vmbackup-thaw-guard"

// The guard protocol, one line each way. The daemon writes "P <quoted
// path>" before each FIFREEZE, "S 1" or "S 0" after it (frozen or not),
// and "D" once everything is thawed. The guard writes "R" once it
// listens. Paths are strconv-quoted, so any byte survives.

// ExecGuard starts the guard as a child process: Path Args... --deadline N.
type ExecGuard struct {
	Path string
	Args []string
	Env  []string // nil inherits
	// Stderr receives the guard's log lines; nil inherits ours.
	Stderr io.Writer
}

// Start starts the guard and waits until it listens.
func (g ExecGuard) Start(d Deadline) (Guard, error) {
	args := append(append([]string{}, g.Args...), "--deadline", strconv.FormatInt(d, 10))
	cmd := exec.Command(g.Path, args...)
	cmd.Env = g.Env
	cmd.Stderr = g.Stderr
	if cmd.Stderr == nil {
		cmd.Stderr = os.Stderr
	}
	// Its own process group: a ^C or a group kill aimed at the daemon
	// does not take it down before it has thawed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("thaw guard: %w", err)
	}
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(out).ReadString('\n')
		if err == nil && line != "R\n" {
			err = fmt.Errorf("unexpected %q", line)
		}
		ready <- err
	}()
	select {
	case err = <-ready:
	case <-time.After(5 * time.Second):
		err = errors.New("not ready after 5s")
	}
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("thaw guard: %w", err)
	}
	return &execGuard{cmd: cmd, in: in}, nil
}

type execGuard struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	once sync.Once
}

func (g *execGuard) Pending(path string) error {
	_, err := fmt.Fprintf(g.in, "P %s\n", strconv.Quote(path))
	return err
}

func (g *execGuard) Settle(frozen bool) error {
	v := "0"
	if frozen {
		v = "1"
	}
	_, err := fmt.Fprintf(g.in, "S %s\n", v)
	return err
}

func (g *execGuard) Done() {
	g.once.Do(func() {
		fmt.Fprintf(g.in, "D\n")
		g.in.Close()
		go g.cmd.Wait() // reap it
	})
}

// GuardState is the guard's list: the paths the daemon froze, and the
// one it is freezing.
type GuardState struct {
	Frozen  []string
	Pending string
	Done    bool
}

// ParseGuardLine applies one protocol line. It is the decoder of what
// the daemon sends (fuzzed).
func (s *GuardState) ParseGuardLine(line string) error {
	switch {
	case line == "D":
		s.Done, s.Frozen, s.Pending = true, nil, ""
	case strings.HasPrefix(line, "P "):
		p, err := strconv.Unquote(line[2:])
		if err != nil || !strings.HasPrefix(p, "/") {
			return fmt.Errorf("bad path in %q", line)
		}
		s.Pending = p
	case line == "S 1" || line == "S 0":
		if s.Pending == "" {
			return fmt.Errorf("%q without a pending path", line)
		}
		if line == "S 1" {
			s.Frozen = append(s.Frozen, s.Pending)
		}
		s.Pending = ""
	default:
		return fmt.Errorf("unknown line %q", line)
	}
	return nil
}

// thawList is what to thaw, newest first: the pending path (the daemon
// may have died inside FIFREEZE) and then the frozen ones.
func (s *GuardState) thawList() []string {
	var out []string
	if s.Pending != "" {
		out = append(out, s.Pending)
	}
	for i := len(s.Frozen) - 1; i >= 0; i-- {
		out = append(out, s.Frozen[i])
	}
	return out
}

// GuardMain is the thaw guard: it reads the protocol on stdin and thaws
// the listed mount points with FITHAW when stdin ends without "D" (the
// daemon died), at the deadline, or on SIGTERM/SIGINT/SIGHUP (systemd
// stopping the unit's cgroup). It never thaws a path the daemon did not
// report, and it opens no file on the file systems it guards except the
// mount points themselves. Exit status: 0 after "D" or a clean thaw, 1 if
// a thaw failed, 2 for bad usage.
func GuardMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return guardMain(args, stdin, stdout, stderr, ThawPath)
}

func guardMain(args []string, stdin io.Reader, stdout, stderr io.Writer, thaw func(string) error) int {
	var deadline time.Duration
	if len(args) == 2 && args[0] == "--deadline" {
		n, err := strconv.ParseInt(args[1], 10, 64)
		if err != nil || n < 0 || n > int64(maxTimeout/time.Second)+1 {
			fmt.Fprintf(stderr, "vmbackup guard: bad --deadline %q\n", args[1])
			return 2
		}
		deadline = time.Duration(n) * time.Second
	} else if len(args) != 0 {
		fmt.Fprintf(stderr, "vmbackup guard: usage: %s [--deadline SECONDS]\n", GuardCommand)
		return 2
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)
	signal.Ignore(syscall.SIGPIPE)

	var mu sync.Mutex
	st := &GuardState{}
	eof := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdin)
		sc.Buffer(make([]byte, 0, 4096), 64<<10)
		for sc.Scan() {
			mu.Lock()
			err := st.ParseGuardLine(sc.Text())
			done := st.Done
			mu.Unlock()
			if err != nil {
				fmt.Fprintf(stderr, "vmbackup guard: %v\n", err)
			}
			if done {
				eof <- nil
				return
			}
		}
		eof <- errors.New("the daemon went away")
	}()
	fmt.Fprintf(stdout, "R\n")
	var timer <-chan time.Time
	if deadline > 0 {
		timer = time.After(deadline)
	}
	var why string
	select {
	case err := <-eof:
		if err == nil {
			return 0
		}
		why = err.Error()
	case <-timer:
		why = "deadline reached"
	case s := <-sigs:
		why = "signal " + s.String()
	}
	mu.Lock()
	list := st.thawList()
	mu.Unlock()
	code := 0
	for _, p := range list {
		if err := thaw(p); err != nil {
			fmt.Fprintf(stderr, "vmbackup guard: %s: thaw %s failed: %v\n", why, p, err)
			code = 1
			continue
		}
		fmt.Fprintf(stderr, "vmbackup guard: %s: thawed %s\n", why, p)
	}
	return code
}
