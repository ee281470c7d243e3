package guestops

import (
	"os"
	"os/exec"
	"strings"
	"syscall"

	"github.com/govmtools/govmtools/vmtoolsd/vix/vixproto"
)

// Started is a program StartProgram started: Wait blocks until it ends
// and returns its exit code as open-vm-tools records it (WEXITSTATUS, so
// a program killed by a signal reads 0).
type Started struct {
	Pid int
	cmd *exec.Cmd
}

// Wait waits for the program.
func (s *Started) Wait() int {
	err := s.cmd.Wait()
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Exited() {
			return ws.ExitStatus()
		}
		return 0
	}
	return -1
}

// CommandLine is what StartProgram runs with the shell: the program path
// in double quotes, then the arguments verbatim.
func CommandLine(p *vixproto.StartProgram) string {
	s := `"` + p.ProgramPath + `"`
	if p.Arguments != "" {
		s += " " + p.Arguments
	}
	return s
}

// CmdName is the program's base name, as the process list shows it.
func CmdName(path string) string {
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		return path[i+1:]
	}
	return path
}

// Start is StartProgram (185): the program must exist and be executable
// by the user (else the errno's code, or ErrGuestUserPermissions), the
// working directory (default home) must be a directory; the command line
// runs under /bin/bash -c (else /bin/sh -c) with exactly the given
// environment, or this process's when none is given. Its standard
// streams are /dev/null.
func (e *Env) Start(p *vixproto.StartProgram, home string) (*Started, Result) {
	exe := strings.TrimLeft(p.ProgramPath, " ")
	if strings.HasPrefix(exe, `"`) {
		exe = strings.TrimPrefix(exe, `"`)
		if i := strings.IndexByte(exe, '"'); i >= 0 {
			exe = exe[:i]
		}
	}
	var st syscall.Stat_t
	if err := syscall.Stat(exe, &st); err != nil {
		return nil, FromErr(err)
	}
	if err := syscall.Access(exe, 1 /* X_OK */); err != nil || st.Mode&syscall.S_IFMT == syscall.S_IFDIR {
		return nil, vixErr(vixproto.ErrGuestUserPermissions)
	}
	dir := p.WorkingDir
	if dir != "" {
		if err := syscall.Stat(dir, &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
			return nil, vixErr(vixproto.ErrNotADirectory)
		}
	} else {
		dir = home
	}
	shell := "/bin/bash"
	if _, err := os.Stat(shell); err != nil {
		shell = "/bin/sh"
	}
	cmd := exec.Command(shell, "-c", CommandLine(p))
	cmd.Dir = dir
	cmd.Env = e.Environ
	if len(p.Env) > 0 {
		cmd.Env = p.Env
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		// A working directory that went away, or no fork.
		r := FromErr(err)
		if r.Err == vixproto.ErrFail {
			r.Err = vixproto.ErrProgramNotStarted
		}
		return nil, r
	}
	return &Started{Pid: cmd.Process.Pid, cmd: cmd}, ok(nil)
}
