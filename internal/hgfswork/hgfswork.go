// Package hgfswork holds what the shared-folder workload tests and the
// benchmark share: Mounter, which says which client binary mounts a
// vmxsim share and how (ours over unix:DIR today; Debian's vmhgfs-fuse
// under the ptrace trap joins as another Mounter), and the workloads
// themselves, which run on any directory so the same code measures a
// mount and the share's directory directly (the native limit).
// Only tests and bench import it.
package hgfswork

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"
)

// Mounter is one way of mounting a vmxsim share: a client binary and how
// it reaches the simulator it was made for.
type Mounter struct {
	Name string
	// Mount mounts source (".host:/" or ".host:/SHARE[/PATH]") at mnt
	// with extra -o options and returns once the mount is ready.
	Mount func(ctx context.Context, source, mnt string, opts ...string) error
	// PID returns the pid of the process serving the latest mount, 0
	// when it is not known (a client that puts itself in the
	// background); nil means never known.
	PID func() int
}

// Ours mounts with govmtools' vmhgfs-fuse from bin over unix:simDir. Its
// background process logs to logFile when that is not "".
func Ours(bin, simDir, logFile string) Mounter {
	return Mounter{
		Name: "govmtools",
		Mount: func(ctx context.Context, source, mnt string, opts ...string) error {
			args := []string{"--rpc", "unix:" + simDir}
			if logFile != "" {
				args = append(args, "--log-file", logFile)
			}
			for _, o := range opts {
				args = append(args, "-o", o)
			}
			args = append(args, source, mnt)
			out, err := exec.CommandContext(ctx, filepath.Join(bin, "vmhgfs-fuse"), args...).CombinedOutput()
			if err != nil {
				return fmt.Errorf("vmhgfs-fuse %s: %v: %s", strings.Join(args, " "), err, out)
			}
			if !IsMounted(mnt) {
				return fmt.Errorf("vmhgfs-fuse returned but %s is not mounted", mnt)
			}
			return nil
		},
	}
}

// Starter starts argv (with extra environment variables env) in the
// background and returns its pid and a function reading its output so
// far; under the ptrace trap that is testutil.TrapShell.Start.
type Starter func(env []string, argv ...string) (pid int, output func() string, err error)

// Foreground mounts with a vmhgfs-fuse (ours or open-vm-tools') that start
// runs in the foreground (-f), e.g. under the trap with --rpc auto: the
// program stays until the mount is unmounted. args go before the mount
// options.
func Foreground(name string, start Starter, env []string, argv0 string, args ...string) Mounter {
	var last atomic.Int64
	return Mounter{
		Name: name,
		PID:  func() int { return int(last.Load()) },
		Mount: func(ctx context.Context, source, mnt string, opts ...string) error {
			argv := append([]string{argv0, "-f"}, args...)
			for _, o := range opts {
				argv = append(argv, "-o", o)
			}
			argv = append(argv, source, mnt)
			pid, output, err := start(env, argv...)
			if err != nil {
				return err
			}
			last.Store(int64(pid))
			deadline := time.Now().Add(30 * time.Second)
			for !IsMounted(mnt) {
				switch {
				case exited(pid):
					return fmt.Errorf("%s exited without mounting: %s", strings.Join(argv, " "), output())
				case time.Now().After(deadline) || ctx.Err() != nil:
					return fmt.Errorf("%s: %s is not mounted after 30 s: %s", strings.Join(argv, " "), mnt, output())
				}
				time.Sleep(5 * time.Millisecond)
			}
			return nil
		},
	}
}

// exited reports whether process pid is gone or a zombie.
func exited(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// pid (comm) STATE ...: comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] == 'Z' || b[i+2] == 'X'
}

// IsMounted reports whether mnt is a mount point (per /proc/self/mountinfo).
func IsMounted(mnt string) bool {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	defer f.Close()
	abs, _ := filepath.Abs(mnt)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && fields[4] == abs {
			return true
		}
	}
	return false
}

// Unmount unmounts mnt, lazily if it is busy, and waits until it is gone.
func Unmount(mnt string) error {
	if !IsMounted(mnt) {
		return nil
	}
	if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
		if out2, err2 := exec.Command("umount", "-l", mnt).CombinedOutput(); err2 != nil {
			return fmt.Errorf("umount %s: %s; umount -l: %s", mnt, out, out2)
		}
	}
	for range 500 {
		if !IsMounted(mnt) {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("%s still mounted", mnt)
}

// CreateFiles creates n empty files in dir, as `touch` does.
func CreateFiles(dir string, n int) error {
	for i := range n {
		f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("f%05d", i)), os.O_WRONLY|os.O_CREATE, 0o644)
		if err != nil {
			return err
		}
		f.Close()
	}
	return nil
}

// ListLong does what `ls -l` does: read the directory, lstat every entry.
func ListLong(dir string) (int, error) {
	f, err := os.Open(dir)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return 0, err
	}
	for _, n := range names {
		if _, err := os.Lstat(filepath.Join(dir, n)); err != nil {
			return 0, err
		}
	}
	return len(names), nil
}

// StatFiles stats the n files CreateFiles made.
func StatFiles(dir string, n int) error {
	for i := range n {
		if _, err := os.Stat(filepath.Join(dir, fmt.Sprintf("f%05d", i))); err != nil {
			return err
		}
	}
	return nil
}

// WriteSeq writes size bytes to path in block-sized writes.
func WriteSeq(path string, size int64, block int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	buf := make([]byte, block)
	for i := range buf {
		buf[i] = byte(i*31 + 7)
	}
	for done := int64(0); done < size; {
		n := min(int64(block), size-done)
		if _, err := f.Write(buf[:n]); err != nil {
			f.Close()
			return err
		}
		done += n
	}
	return f.Close()
}

// ReadSeq reads path to the end in block-sized reads.
func ReadSeq(path string, block int) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return io.CopyBuffer(io.Discard, struct{ io.Reader }{f}, make([]byte, block))
}

// MakeSourceTree writes a deterministic source-like tree into dir: nested
// directories of small and medium files, an executable, a symlink.
func MakeSourceTree(dir string, files int) error {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range files {
		d := filepath.Join(dir, fmt.Sprintf("pkg%02d", i%17), fmt.Sprintf("sub%d", i%3))
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		size := r.IntN(6000)
		if i%50 == 0 {
			size = 200000 + r.IntN(100000)
		}
		data := make([]byte, size)
		for j := range data {
			data[j] = "abcdefghijklmnopqrstuvwxyz \n{}()"[r.IntN(32)]
		}
		if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("file%04d.c", i)), data, 0o644); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "configure"), []byte("#!/bin/sh\necho ok\n"), 0o755); err != nil {
		return err
	}
	return os.Symlink("pkg00/sub0", filepath.Join(dir, "link"))
}

// Tar creates tarball from dir.
func Tar(tarball, dir string) error {
	if out, err := exec.Command("tar", "-C", dir, "-cf", tarball, ".").CombinedOutput(); err != nil {
		return fmt.Errorf("tar -c: %v: %s", err, out)
	}
	return nil
}

// ExtractTar runs `tar -xf tarball` in dir.
func ExtractTar(tarball, dir string) error {
	if out, err := exec.Command("tar", "-C", dir, "-xf", tarball).CombinedOutput(); err != nil {
		return fmt.Errorf("tar -x: %v: %s", err, out)
	}
	return nil
}

// Checksums returns "type mode sha256" per path under dir (symlinks by
// target), for comparing trees.
func Checksums(dir string) (map[string]string, error) {
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out[rel] = "link " + t
		case d.IsDir():
			out[rel] = fmt.Sprintf("dir %o", info.Mode().Perm())
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			out[rel] = fmt.Sprintf("file %o %s", info.Mode().Perm(), hex.EncodeToString(sum[:]))
		}
		return nil
	})
	return out, err
}

// DiffTrees describes how two checksum maps differ ("" if they do not).
func DiffTrees(want, got map[string]string) string {
	var b bytes.Buffer
	for k, v := range want {
		if got[k] != v {
			fmt.Fprintf(&b, "%s: want %q, got %q\n", k, v, got[k])
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			fmt.Fprintf(&b, "%s: unexpected %q\n", k, v)
		}
	}
	return b.String()
}

// GoldenTime is the modification time of every file GoldenShare makes.
var GoldenTime = time.Date(2024, 5, 6, 7, 8, 9, 123456700, time.UTC)

// GoldenShare fills dir with the share the golden HGFS vectors were
// captured on (testdata/peer/vmhgfs-fuse-*.jsonl): the replay tests build
// it again, so the same requests must meet the same files.
func GoldenShare(dir string) error {
	files := []struct {
		name string
		data string
		mode os.FileMode
	}{
		{"hello.txt", "hello, world\n", 0o644},
		{"exec.sh", "#!/bin/sh\necho hi\n", 0o755},
		{"dir/a.txt", "a\n", 0o644},
		{"dir/b.bin", strings.Repeat("0123456789", 300), 0o600},
	}
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(f.data), f.mode); err != nil {
			return err
		}
		if err := os.Chmod(p, f.mode); err != nil {
			return err
		}
	}
	if err := os.Symlink("../hello.txt", filepath.Join(dir, "dir", "link")); err != nil {
		return err
	}
	for _, p := range []string{"hello.txt", "exec.sh", "dir/a.txt", "dir/b.bin", "dir", "."} {
		if err := os.Chtimes(filepath.Join(dir, p), GoldenTime, GoldenTime); err != nil {
			return err
		}
	}
	return nil
}
