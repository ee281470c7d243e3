// Package guestops performs the guest operations of VIX requests
// (docs/architecture.md section 10) as the calling process's user:
// listing, creating, moving and deleting files and directories, temporary
// files, attributes, environment variables, terminating and starting
// programs. It runs inside vmware-vix-helper after authentication and the
// switch to the authenticated user, so the kernel enforces every
// permission; it never switches users itself.
package guestops

import (
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/govmtools/govmtools/vmtoolsd/vix/vixproto"
)

// Result is an operation's answer: the VIX error, the errno behind it
// (the reply's additional error), and the payload.
type Result struct {
	Err     vixproto.Error
	Errno   uint32
	Payload []byte
}

func ok(p []byte) Result { return Result{Payload: p} }

func vixErr(e vixproto.Error) Result { return Result{Err: e} }

// FromErr maps a Go error (an errno inside) to the VIX code as
// open-vm-tools' Vix_TranslateErrno does on Linux.
func FromErr(err error) Result {
	var en syscall.Errno
	if !errors.As(err, &en) {
		if errors.Is(err, fs.ErrNotExist) {
			return Result{Err: vixproto.ErrFileNotFound, Errno: uint32(syscall.ENOENT)}
		}
		return Result{Err: vixproto.ErrFail}
	}
	return Result{Err: TranslateErrno(en), Errno: uint32(en)}
}

// TranslateErrno is the errno to VIX table.
func TranslateErrno(en syscall.Errno) vixproto.Error {
	switch en {
	case 0:
		return vixproto.OK
	case syscall.EPERM, syscall.EACCES:
		return vixproto.ErrFileAccess
	case syscall.EAGAIN, syscall.EBUSY:
		return vixproto.ErrObjectIsBusy
	case syscall.EEXIST:
		return vixproto.ErrFileAlreadyExists
	case syscall.EFBIG:
		return vixproto.ErrFileTooBig
	case syscall.ENOTEMPTY:
		return vixproto.ErrDirectoryNotEmpty
	case syscall.ENOTDIR:
		return vixproto.ErrNotADirectory
	case syscall.ETIMEDOUT, syscall.ENOBUFS, syscall.EIO, syscall.EMFILE, syscall.ENFILE, syscall.EMLINK, syscall.EROFS:
		return vixproto.ErrFileError
	case syscall.ENODEV, syscall.ENOENT:
		return vixproto.ErrFileNotFound
	case syscall.ENOSPC:
		return vixproto.ErrDiskFull
	case syscall.EISDIR:
		return vixproto.ErrNotAFile
	case syscall.ESRCH:
		return vixproto.ErrNoSuchProcess
	case syscall.ENAMETOOLONG:
		return vixproto.ErrFileNameTooLong
	case syscall.EMSGSIZE, syscall.EINVAL:
		return vixproto.ErrInvalidArg
	case syscall.ELOOP, syscall.ENOMEM:
		return vixproto.ErrOutOfMemory
	}
	return vixproto.ErrFail
}

// Env is what the operations read of the process: its environment (for
// ReadEnvVariables) and the daemon's pid (which TerminateProcess refuses).
type Env struct {
	Environ   []string
	DaemonPid int
	TempBase  string // "" means $TMPDIR, then /tmp
	User      string
}

// Do runs one request (not StartProgram, which needs the caller's
// waiting; see Start) and returns its result.
func (e *Env) Do(r *vixproto.Request) Result {
	switch r.OpCode {
	case vixproto.OpValidateCredentials:
		return ok(nil)
	case vixproto.OpReadEnvVariables:
		p, err := vixproto.ParseReadEnv(r.Body)
		if err != nil {
			return vixErr(err.(vixproto.Error))
		}
		return e.readEnv(p)
	case vixproto.OpListFiles:
		p, err := vixproto.ParseListFiles(r.Body)
		if err != nil {
			return vixErr(err.(vixproto.Error))
		}
		return listFiles(p)
	case vixproto.OpDeleteFileEx, vixproto.OpDeleteDirectoryEx, vixproto.OpCreateDirectoryEx:
		p, err := vixproto.ParseFileOp(r.OpCode, r.Body)
		if err != nil {
			return vixErr(err.(vixproto.Error))
		}
		return fileOp(p)
	case vixproto.OpMoveFileEx, vixproto.OpMoveDirectory:
		p, err := vixproto.ParseRename(r.Body)
		if err != nil {
			return vixErr(err.(vixproto.Error))
		}
		return move(r.OpCode == vixproto.OpMoveDirectory, p)
	case vixproto.OpCreateTempFileEx, vixproto.OpCreateTempDirectory:
		p, err := vixproto.ParseCreateTemp(r.Body)
		if err != nil {
			return vixErr(err.(vixproto.Error))
		}
		return e.createTemp(r.OpCode == vixproto.OpCreateTempDirectory, p)
	case vixproto.OpSetFileAttributes:
		p, err := vixproto.ParseSetAttrs(r.Body)
		if err != nil {
			return vixErr(err.(vixproto.Error))
		}
		return setAttrs(p)
	case vixproto.OpInitiateTransferFrom:
		p, err := vixproto.ParseListFiles(r.Body)
		if err != nil {
			return vixErr(err.(vixproto.Error))
		}
		return initiateFrom(p)
	case vixproto.OpInitiateTransferTo:
		p, err := vixproto.ParseFileOp(r.OpCode, r.Body)
		if err != nil {
			return vixErr(err.(vixproto.Error))
		}
		return initiateTo(p)
	case vixproto.OpTerminateProcess:
		p, err := vixproto.ParseKillProcess(r.Body)
		if err != nil {
			return vixErr(err.(vixproto.Error))
		}
		return e.terminate(p)
	}
	return vixErr(vixproto.ErrNotSupported)
}

func (e *Env) readEnv(p *vixproto.ReadEnv) Result {
	var b []byte
	if len(p.Names) == 0 {
		for _, kv := range e.Environ {
			k, v, _ := strings.Cut(kv, "=")
			b = vixproto.AppendEnv(b, k, v)
		}
		return ok(b)
	}
	for _, n := range p.Names {
		for _, kv := range e.Environ {
			if k, v, found := strings.Cut(kv, "="); found && k == n {
				b = vixproto.AppendEnv(b, k, v)
				break
			}
		}
	}
	return ok(b)
}

func statInfo(name, path string) (vixproto.FileInfo, error) {
	var lst, st syscall.Stat_t
	if err := syscall.Lstat(path, &lst); err != nil {
		return vixproto.FileInfo{}, err
	}
	f := vixproto.FileInfo{Name: name}
	if lst.Mode&syscall.S_IFMT == syscall.S_IFLNK {
		f.Type = vixproto.FileTypeSymlink
		f.SymlinkTarget, _ = os.Readlink(path)
		if syscall.Stat(path, &st) != nil {
			st = lst
		}
	} else {
		st = lst
		if st.Mode&syscall.S_IFMT == syscall.S_IFDIR {
			f.Type = vixproto.FileTypeDir
		}
	}
	if st.Mode&syscall.S_IFMT == syscall.S_IFREG && f.Type == vixproto.FileTypeFile {
		f.Size = st.Size
	}
	f.MTime, f.ATime = st.Mtim.Sec, st.Atim.Sec
	f.UID, f.GID, f.Mode = int64(st.Uid), int64(st.Gid), st.Mode
	return f, nil
}

// listFiles is ListFiles (177): "<T> <rem>R</rem>" and the <fxi> entries
// from index+offset on, "." and ".." first for a directory, filtered by
// the (unanchored) regular expression.
func listFiles(p *vixproto.ListFiles) Result {
	if p.Offset >= 1<<31-1 || p.Index < 0 || p.MaxResults < 0 || (p.MaxResults > 0 && p.Offset >= uint64(p.MaxResults)) {
		return vixErr(vixproto.ErrInvalidArg)
	}
	var re *regexp.Regexp
	if p.Pattern != "" {
		var err error
		if re, err = regexp.Compile(p.Pattern); err != nil {
			return vixErr(vixproto.ErrInvalidArg)
		}
	}
	var lst syscall.Stat_t
	if err := syscall.Lstat(p.Path, &lst); err != nil {
		return FromErr(err)
	}
	var names []string
	dir := lst.Mode&syscall.S_IFMT == syscall.S_IFDIR
	if dir {
		f, err := os.Open(p.Path)
		if err != nil {
			return FromErr(err)
		}
		ents, err := f.Readdirnames(-1)
		f.Close()
		if err != nil {
			return FromErr(err)
		}
		names = append([]string{".", ".."}, ents...)
	} else {
		names = []string{p.Path}
	}
	if re != nil {
		kept := names[:0]
		for _, n := range names {
			if re.MatchString(n) {
				kept = append(kept, n)
			}
		}
		names = kept
	}
	start := int(p.Index) + int(p.Offset)
	total := len(names)
	if p.MaxResults == 0 {
		rem := max(total-int(p.Index), 0)
		return ok([]byte("0 <rem>" + strconv.Itoa(rem) + "</rem>"))
	}
	limit := int(p.MaxResults) - int(p.Offset)
	var body []byte
	truncated, sent, last := false, 0, start-1
	for i := start; i < total && sent < limit; i++ {
		path := names[i]
		if dir {
			path = filepath.Join(p.Path, names[i])
		}
		fi, err := statInfo(names[i], path)
		last = i
		if err != nil {
			continue // skipped, still counted
		}
		entry := vixproto.AppendFileInfo(nil, &fi)
		if len(body)+len(entry)+64 > vixproto.MaxReplyPayload {
			truncated, last = true, i-1
			break
		}
		body = append(body, entry...)
		sent++
	}
	rem := max(total-last-1, 0)
	head := "0 "
	if truncated {
		head = "1 "
	}
	return ok(append([]byte(head+"<rem>"+strconv.Itoa(rem)+"</rem>"), body...))
}

func fileOp(p *vixproto.FileOp) Result {
	var st syscall.Stat_t
	switch p.Op {
	case vixproto.OpDeleteFileEx:
		if err := syscall.Lstat(p.Path, &st); err != nil {
			return FromErr(err)
		}
		if t := st.Mode & syscall.S_IFMT; t == syscall.S_IFDIR {
			return vixErr(vixproto.ErrNotAFile)
		}
		if err := syscall.Unlink(p.Path); err != nil {
			return FromErr(err)
		}
	case vixproto.OpDeleteDirectoryEx:
		if err := syscall.Lstat(p.Path, &st); err != nil {
			return FromErr(err)
		}
		if st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
			return vixErr(vixproto.ErrNotADirectory)
		}
		var err error
		if p.Flag {
			err = os.RemoveAll(p.Path)
		} else {
			err = syscall.Rmdir(p.Path)
		}
		if err != nil {
			return FromErr(err)
		}
	case vixproto.OpCreateDirectoryEx:
		if syscall.Lstat(p.Path, &st) == nil {
			return vixErr(vixproto.ErrFileAlreadyExists)
		}
		var err error
		if p.Flag {
			err = os.MkdirAll(p.Path, 0o700)
		} else {
			err = syscall.Mkdir(p.Path, 0o700)
		}
		if err != nil {
			return FromErr(err)
		}
	}
	return ok(nil)
}

func move(isDir bool, p *vixproto.Rename) Result {
	var src, dst syscall.Stat_t
	if err := syscall.Lstat(p.Old, &src); err != nil {
		return FromErr(err)
	}
	srcDir := src.Mode&syscall.S_IFMT == syscall.S_IFDIR
	dstErr := syscall.Lstat(p.New, &dst)
	if isDir {
		if !srcDir {
			return vixErr(vixproto.ErrNotADirectory)
		}
		if dstErr == nil {
			return vixErr(vixproto.ErrFileAlreadyExists)
		}
	} else {
		if srcDir {
			return vixErr(vixproto.ErrNotAFile)
		}
		if dstErr == nil {
			if dst.Dev == src.Dev && dst.Ino == src.Ino {
				return ok(nil)
			}
			if dst.Mode&syscall.S_IFMT == syscall.S_IFDIR || !p.Overwrite {
				return vixErr(vixproto.ErrFileAlreadyExists)
			}
		}
	}
	err := syscall.Rename(p.Old, p.New)
	if err == syscall.EXDEV && !isDir {
		err = copyUnlink(p.Old, p.New)
	}
	if err != nil {
		return FromErr(err)
	}
	return ok(nil)
}

func copyUnlink(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, st.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Remove(from)
}

func (e *Env) createTemp(isDir bool, p *vixproto.CreateTemp) Result {
	dir := p.Dir
	if dir == "" {
		d, err := e.privateTemp()
		if err != nil {
			return FromErr(err)
		}
		dir = d
	} else {
		var st syscall.Stat_t
		if err := syscall.Stat(dir, &st); err != nil {
			return FromErr(err)
		}
		if st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
			return vixErr(vixproto.ErrNotADirectory)
		}
	}
	n := rand.Uint32()
	for range 1000 {
		n += rand.Uint32N(1<<16) + 1
		if isDir {
			n &^= 1
		} else {
			n |= 1
		}
		path := filepath.Join(dir, p.Prefix+"vmware"+strconv.FormatUint(uint64(n), 10)+p.Suffix)
		var err error
		if isDir {
			err = syscall.Mkdir(path, 0o700)
		} else {
			var fd int
			fd, err = syscall.Open(path, syscall.O_CREAT|syscall.O_EXCL|syscall.O_WRONLY|syscall.O_CLOEXEC, 0o600)
			if err == nil {
				syscall.Close(fd)
			}
		}
		if err == syscall.EEXIST {
			continue
		}
		if err != nil {
			return FromErr(err)
		}
		return ok([]byte(path))
	}
	return vixErr(vixproto.ErrObjectIsBusy)
}

// privateTemp returns (creating it) the user's private 0700 directory
// under the temporary base, vmware-<user>.
func (e *Env) privateTemp() (string, error) {
	base := e.TempBase
	if base == "" {
		base = os.Getenv("TMPDIR")
	}
	if base == "" {
		base = "/tmp"
	}
	d := filepath.Join(base, "vmware-"+e.User)
	if err := os.Mkdir(d, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", err
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(d, &st); err != nil {
		return "", err
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFDIR || int(st.Uid) != os.Geteuid() || st.Mode&0o077 != 0 {
		return "", syscall.EACCES // someone else's, or a symlink: never used
	}
	return d, nil
}

func setAttrs(p *vixproto.SetAttrs) Result {
	if p.Options&vixproto.AttrWindowsOnly != 0 {
		return vixErr(vixproto.ErrInvalidArg)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(p.Path, &st); err != nil {
		return FromErr(err)
	}
	if p.Options&(vixproto.AttrSetAccessDate|vixproto.AttrSetModifyDate) != 0 {
		at, mt := time.Unix(st.Atim.Sec, st.Atim.Nsec), time.Unix(st.Mtim.Sec, st.Mtim.Nsec)
		if p.Options&vixproto.AttrSetAccessDate != 0 {
			at = time.Unix(p.AccessTime, 0)
		}
		if p.Options&vixproto.AttrSetModifyDate != 0 {
			mt = time.Unix(p.ModTime, 0)
		}
		if err := os.Chtimes(p.Path, at, mt); err != nil {
			return FromErr(err)
		}
	}
	if p.Options&(vixproto.AttrSetUnixOwner|vixproto.AttrSetUnixGroup) != 0 {
		uid, gid := int(st.Uid), int(st.Gid)
		if p.Options&vixproto.AttrSetUnixOwner != 0 {
			uid = int(p.Owner)
		}
		if p.Options&vixproto.AttrSetUnixGroup != 0 {
			gid = int(p.Group)
		}
		if err := os.Chown(p.Path, uid, gid); err != nil {
			return FromErr(err)
		}
	}
	if p.Options&vixproto.AttrSetUnixPerms != 0 {
		if err := syscall.Chmod(p.Path, uint32(p.Perms)&0o7777); err != nil {
			return FromErr(err)
		}
	}
	return ok(nil)
}

// terminate is TerminateProcess (193): SIGTERM, up to 5 s for the process
// to go, then SIGKILL and up to 15 s more.
func (e *Env) terminate(p *vixproto.KillProcess) Result {
	if p.Pid == 0 || p.Pid > 1<<31-1 {
		return vixErr(vixproto.ErrNoSuchProcess)
	}
	pid := int(p.Pid)
	if pid == e.DaemonPid || pid == os.Getpid() {
		return vixErr(vixproto.ErrGuestUserPermissions)
	}
	for i, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		if err := syscall.Kill(pid, sig); err != nil {
			if i > 0 && err == syscall.ESRCH {
				return ok(nil)
			}
			if err == syscall.EPERM || err == syscall.EACCES {
				return Result{Err: vixproto.ErrGuestUserPermissions, Errno: uint32(err.(syscall.Errno))}
			}
			return FromErr(err)
		}
		wait := 50
		if i > 0 {
			wait = 150
		}
		for range wait {
			if gone(pid) {
				return ok(nil)
			}
			time.Sleep(100 * time.Millisecond) // the poll interval of the operation itself
		}
	}
	return Result{Err: vixproto.ErrFail, Errno: uint32(syscall.EDEADLK)}
}

// gone reports whether pid has exited (a zombie counts: its parent
// reaps it).
func gone(pid int) bool {
	if syscall.Kill(pid, 0) == syscall.ESRCH {
		return true
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	if i := strings.LastIndexByte(string(b), ')'); i >= 0 && i+2 < len(b) {
		return b[i+2] == 'Z'
	}
	return false
}
