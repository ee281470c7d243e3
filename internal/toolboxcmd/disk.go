package toolboxcmd

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Texts of the disk commands (open-vm-tools' catalog).
const (
	shrinkUnavailable = "The shrink feature is not available,\n\neither because you are running an old version of a VMware product, or because too many communication channels are open.\n\nIf you are running an old version of a VMware product, you should consider upgrading.\n\nIf too many communication channels are open, you should power off your virtual machine and then power it back on.\n"
	shrinkDisabled    = "Shrink disk is disabled for this virtual machine.\n\nShrinking is disabled for linked clones, parents of linked clones, \npre-allocated disks, snapshots, or due to other factors. \nSee the User's manual for more information.\n"
)

// wiperState is the host's answer to disk.wiper.enable.
type wiperState int

const (
	wiperUnavailable wiperState = iota
	wiperDisabled
	wiperEnabled
)

func (r *run) wiperState() wiperState {
	reply, ok := r.rpcReply("disk.wiper.enable")
	switch {
	case !ok:
		return wiperUnavailable
	case reply == "1":
		return wiperEnabled
	}
	return wiperDisabled
}

// partition is one mounted file system and whether it can be wiped.
type partition struct {
	mountPoint string
	ok         bool
}

// partitions asks the host for the wiper and, when it is enabled, reads
// the mount table; otherwise it says why not and returns ok false.
func (r *run) partitions() ([]partition, bool) {
	switch r.wiperState() {
	case wiperUnavailable:
		r.printErr("%s", shrinkUnavailable)
		return nil, false
	case wiperDisabled:
		r.printErr("%s", shrinkDisabled)
		return nil, false
	}
	parts, err := r.readMounts()
	if err != nil {
		r.printErr("Unable to collect partition data.\n")
		return nil, false
	}
	return parts, true
}

// diskFS are the file systems the wiper knows, and whether they sit on a
// disk device (zfs does not: its mount point must be writable instead).
var diskFS = map[string]bool{
	"ext2": true, "ext3": true, "ext4": true, "hfs": true, "msdos": true, "ntfs": true,
	"pcfs": true, "reiserfs": true, "ufs": true, "vfat": true, "xfs": true, "btrfs": true, "zfs": false,
}

// readMounts reads the mount table as open-vm-tools' wiper does: a known
// file system on a writable block device of a disk major, or zfs with a
// writable mount point, can be wiped.
func (r *run) readMounts() ([]partition, error) {
	path := r.Mounts
	if path == "" {
		path = "/proc/mounts"
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	majors := r.diskMajors()
	var parts []partition
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 {
			continue
		}
		src, mp, fsType, opts := unescapeMount(fields[0]), unescapeMount(fields[1]), fields[2], fields[3]
		p := partition{mountPoint: mp}
		backed, known := diskFS[fsType]
		switch {
		case !known:
		case !backed:
			p.ok = unix.Access(mp, unix.W_OK) == nil
		default:
			var st unix.Stat_t
			p.ok = unix.Stat(src, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFBLK &&
				majors[unix.Major(st.Rdev)] && !hasOption(opts, "ro")
		}
		parts = append(parts, p)
	}
	return parts, sc.Err()
}

// unescapeMount undoes the octal escapes of /proc/mounts (\040 for a
// space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func hasOption(opts, o string) bool {
	for _, x := range strings.Split(opts, ",") {
		if x == o {
			return true
		}
	}
	return false
}

// diskMajors are the block majors of disks: IDE, SCSI, XT/loop-era and NVMe
// ones, and those /proc/devices names as disk drivers.
func (r *run) diskMajors() map[uint32]bool {
	m := map[uint32]bool{3: true, 8: true, 22: true, 43: true, 259: true}
	path := r.ProcDevices
	if path == "" {
		path = "/proc/devices"
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return m
	}
	block := false
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "Block devices:") {
			block = true
			continue
		}
		f := strings.Fields(line)
		if !block || len(f) != 2 {
			continue
		}
		switch f[1] {
		case "ide0", "ide1", "sd", "md", "nbd", "device-mapper", "blkext":
			if n, err := strconv.ParseUint(f[0], 10, 32); err == nil {
				m[uint32(n)] = true
			}
		}
	}
	return m
}

// disk is `disk list|shrink MP|wipe MP|shrinkonly`.
func (r *run) disk() int {
	switch sub := r.args[1]; sub {
	case "list":
		enabled := r.wiperState() == wiperEnabled
		parts, ok := r.partitions()
		if !ok {
			return ExTempFail
		}
		n := 0
		for _, p := range parts {
			if p.ok && enabled {
				r.out("%s\n", p.mountPoint)
				n++
			}
		}
		if n == 0 {
			r.printErr("%s", shrinkDisabled)
			return ExTempFail
		}
		return ExitOK
	case "shrink", "wipe":
		if len(r.args) < 3 {
			return r.missing("mount point")
		}
		return r.wipe(r.args[2], sub == "shrink")
	case "shrinkonly":
		enabled := r.wiperState() == wiperEnabled
		parts, ok := r.partitions()
		if !ok {
			return ExTempFail
		}
		for _, p := range parts {
			if p.ok && enabled {
				return r.shrinkRPC()
			}
		}
		r.printErr("%s", shrinkDisabled)
		return ExTempFail
	default:
		return r.unknown("subcommand", sub)
	}
}

func (r *run) shrinkRPC() int {
	r.printErr("\n")
	if reply, ok := r.rpcReply("disk.shrink"); !ok {
		r.printErr("Error while shrinking: %s\n", reply)
		return ExTempFail
	}
	r.print("Disk shrinking complete.\n")
	return ExitOK
}

// wipe fills the free space of the file system at mp with zeros and frees
// it again (so that the host can reclaim the blocks), then, for shrink,
// asks the host to shrink the disk.
func (r *run) wipe(mp string, shrink bool) int {
	var part *partition
	if parts, ok := r.partitions(); ok {
		for i := range parts {
			if parts[i].mountPoint == mp {
				part = &parts[i]
				if part.ok {
					break
				}
			}
		}
	}
	if part == nil {
		r.printErr("Unable to find partition %s\n", mp)
		return ExOSFile
	}
	if !part.ok {
		r.printErr("Partition %s is not shrinkable\n", mp)
		return ExUnavailable
	}
	if r.wiperState() != wiperEnabled {
		r.printErr("%s", shrinkDisabled)
		return ExTempFail
	}
	what := "wipe"
	if shrink {
		what = "shrink"
	}
	r.print("Please disregard any warnings about disk space for the duration of %s process.\n", what)
	err := r.fill(mp)
	r.out("\n")
	code := ExitOK
	switch {
	case err != nil:
		code = ExTempFail
	case shrink:
		code = r.shrinkRPC()
	}
	if code != ExitOK {
		r.printErr("Shrinking not completed.\n")
	}
	return code
}

// Wiper sizes: free space left alone, the most one file gets, one write.
const (
	wiperKeepFree = 5 << 20
	wiperFileMax  = 2 << 30
	wiperChunk    = 64 << 10
)

// fill writes zero-filled files mp/wiperN (unlinked at once, so they go
// away with the process) until at most 5 MB are free, printing the
// progress unless -q.
func (r *run) fill(mp string) error {
	var files []*os.File
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	buf := make([]byte, wiperChunk)
	var cur *os.File
	var size int64
	for n := 0; ; {
		var st unix.Statfs_t
		if err := unix.Statfs(mp, &st); err != nil {
			r.printErr("Error: %s\n", strerror(err))
			return err
		}
		free, total := st.Bavail*uint64(st.Bsize), st.Blocks*uint64(st.Bsize)
		progress := 100
		if free > wiperKeepFree && total > 0 {
			progress = int(99 - 99*free/total)
		}
		r.progress(progress)
		if progress == 100 {
			return nil
		}
		if cur == nil || size+wiperChunk >= wiperFileMax {
			f, err := createWiper(mp, &n)
			if err != nil {
				r.printErr("Error, Unable to create wiper file.\n")
				return err
			}
			files, cur, size = append(files, f), f, 0
		}
		for i := 0; i < (2<<20)/wiperChunk && size+wiperChunk < wiperFileMax; i++ {
			if _, err := cur.Write(buf); err != nil {
				if errors.Is(err, syscall.ENOSPC) {
					r.progress(100)
					return nil
				}
				r.printErr("Error: %s\n", "Unable to write to a wiper file")
				return err
			}
			size += wiperChunk
		}
	}
}

func createWiper(mp string, n *int) (*os.File, error) {
	for {
		name := fmt.Sprintf("%s/wiper%d", mp, *n)
		*n++
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		os.Remove(name)
		return f, nil
	}
}

// progress draws "\rProgress: N [===>    ]" unless -q.
func (r *run) progress(p int) {
	if r.quiet {
		return
	}
	bar := strings.Repeat("=", p/10+1)
	fmt.Fprintf(r.Stdout, "\rProgress: %d [%s>%*c", p, bar, 10-(p/10+1)+1, ']')
}
