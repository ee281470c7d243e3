package e2e

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/govmtools/govmtools/internal/testutil"
)

// TestHGFSErrnos: the errnos programs branch on come out of a real mount
// as the host's file system produced them (docs/hgfs-errno.md), for every
// client: rm -r waits for ENOTEMPTY, mkdir -p for EEXIST, path walkers
// for ENOTDIR, cp stops on ENOSPC, and EPERM (an immutable file) is not
// EACCES (a read-only share). Each check makes the host return the status
// itself where the guest kernel could answer from its cache, so the
// client's status -> errno table is what is tested.
func TestHGFSErrnos(t *testing.T) {
	testutil.RequireRoot(t)
	for _, c := range mounters() {
		t.Run(c.name, func(t *testing.T) {
			ro := t.TempDir()
			if err := os.WriteFile(filepath.Join(ro, "f"), []byte("x"), 0o666); err != nil {
				t.Fatal(err)
			}
			e := newHGFSEnv(t, c, "--share", "ro="+ro+",ro")
			full := filepath.Join(e.share, "full")
			smallTmpfs(t, full, "256k")
			mnt := e.mount(t, ".host:/")
			dir := filepath.Join(mnt, "s")
			host := e.share
			t.Run("ENOTEMPTY", func(t *testing.T) {
				must0(t, os.MkdirAll(filepath.Join(host, "ne"), 0o755))
				must0(t, os.WriteFile(filepath.Join(host, "ne/f"), nil, 0o644))
				wantErrno(t, "rmdir of a non-empty directory", syscall.Rmdir(filepath.Join(dir, "ne")), syscall.ENOTEMPTY)
				// rm -r empties it, then rmdir succeeds.
				must0(t, os.Remove(filepath.Join(dir, "ne/f")))
				must0(t, syscall.Rmdir(filepath.Join(dir, "ne")))
			})
			t.Run("ENOTDIR", func(t *testing.T) {
				// The guest knows nd as a directory; the host makes it a file.
				must0(t, os.Mkdir(filepath.Join(dir, "nd"), 0o755))
				must0(t, os.Remove(filepath.Join(host, "nd")))
				must0(t, os.WriteFile(filepath.Join(host, "nd"), nil, 0o644))
				_, err := syscall.Open(filepath.Join(dir, "nd/x"), syscall.O_CREAT|syscall.O_WRONLY, 0o644)
				wantErrno(t, "create under a file", err, syscall.ENOTDIR)
				must0(t, os.WriteFile(filepath.Join(host, "nf"), nil, 0o644))
				wantErrno(t, "rmdir of a file", syscall.Rmdir(filepath.Join(dir, "nf")), syscall.ENOTDIR)
			})
			t.Run("EEXIST", func(t *testing.T) {
				// A negative lookup first, then the host creates the name.
				if _, err := os.Stat(filepath.Join(dir, "ex")); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("stat ex: %v", err)
				}
				must0(t, os.Mkdir(filepath.Join(host, "ex"), 0o755))
				wantErrno(t, "mkdir of an existing name", syscall.Mkdir(filepath.Join(dir, "ex"), 0o755), syscall.EEXIST)
				must0(t, os.WriteFile(filepath.Join(host, "exf"), nil, 0o644))
				_, err := syscall.Open(filepath.Join(dir, "exf"), syscall.O_CREAT|syscall.O_EXCL|syscall.O_WRONLY, 0o644)
				wantErrno(t, "O_EXCL create of an existing file", err, syscall.EEXIST)
			})
			t.Run("ENAMETOOLONG", func(t *testing.T) {
				long := strings.Repeat("n", 300)
				_, err := syscall.Open(filepath.Join(dir, long), syscall.O_CREAT|syscall.O_WRONLY, 0o644)
				wantErrno(t, "create of a 300-byte name", err, syscall.ENAMETOOLONG)
				wantErrno(t, "mkdir of a 300-byte name", syscall.Mkdir(filepath.Join(dir, long), 0o755), syscall.ENAMETOOLONG)
			})
			t.Run("EACCES", func(t *testing.T) {
				_, err := syscall.Open(filepath.Join(mnt, "ro/f"), syscall.O_WRONLY, 0)
				wantErrno(t, "open for writing in a read-only share", err, syscall.EACCES)
				wantErrno(t, "mkdir in a read-only share", syscall.Mkdir(filepath.Join(mnt, "ro/d"), 0o755), syscall.EACCES)
			})
			t.Run("EPERM", func(t *testing.T) {
				imm := filepath.Join(full, "imm")
				must0(t, os.WriteFile(imm, []byte("x"), 0o666))
				if out, err := exec.Command("chattr", "+i", imm).CombinedOutput(); err != nil {
					t.Fatalf("chattr +i: %v %s", err, out)
				}
				t.Cleanup(func() { exec.Command("chattr", "-i", imm).Run() })
				wantErrno(t, "unlink of an immutable file", syscall.Unlink(filepath.Join(dir, "full/imm")), syscall.EPERM)
			})
			t.Run("ENOSPC", func(t *testing.T) {
				wantErrno(t, "writing 2 MiB into 256 KiB", fill(filepath.Join(dir, "full/big"), 2<<20), syscall.ENOSPC)
			})
		})
	}
}

// smallTmpfs mounts a tmpfs of size at dir (created) until the test ends,
// after the test's own mounts are gone.
func smallTmpfs(t *testing.T, dir, size string) {
	t.Helper()
	must0(t, os.MkdirAll(dir, 0o777))
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, "size="+size+",mode=0777"); err != nil {
		t.Fatalf("mount tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			syscall.Unmount(dir, syscall.MNT_DETACH)
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
}

// fill writes n bytes in 4 KiB write(2)s, syncs and closes, and returns
// the first error: with writeback the host's ENOSPC may come at the
// write, the fsync or the close.
func fill(path string, n int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for written := 0; written < n; written += len(buf) {
		if _, err := f.Write(buf); err != nil {
			return err
		}
	}
	if err := f.Sync(); err != nil {
		return err
	}
	return f.Close()
}

func wantErrno(t *testing.T, what string, err error, want syscall.Errno) {
	t.Helper()
	var got syscall.Errno
	if !errors.As(err, &got) || got != want {
		t.Errorf("%s: %v, want %v (%s)", what, err, want, want.Error())
	}
}

func must0(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
