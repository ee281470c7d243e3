// Package kmsgtest writes fixture pstore and kdump directories for the
// kmsgdump tests (package tests and end-to-end tests of the binary), and
// says exactly which vmware.log lines shipping them must produce. Non-test
// code never imports it.
package kmsgtest

import (
	"bytes"
	"compress/flate"
	"compress/zlib"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Record is one fixture record as it must appear in vmware.log.
type Record struct {
	// Kind is "pstore" or "kdump"; Name is what the header names
	// (pstore file names joined by spaces, or the kdump file's path).
	Kind, Name string
	// Files are the record's files.
	Files []string
	// Time is the record's time.
	Time time.Time
	// HeaderHas are fragments the begin line must contain.
	HeaderHas []string
	// Lines are the record's vmware.log lines, in order.
	Lines []string
}

// Begin returns the prefix of the record's begin line.
func (r Record) Begin() string { return fmt.Sprintf("kmsgdump: begin %s record %s", r.Kind, r.Name) }

// End returns the record's end line.
func (r Record) End() string {
	return fmt.Sprintf("kmsgdump: end %s record %s (%d lines)", r.Kind, r.Name, len(r.Lines))
}

// LongLine is a kernel line of 2500 bytes, shipped as three lines.
var LongLine = "<4>[  101.000300] long: " + strings.Repeat("0123456789", 248)

func oopsLines(ts int, what string) []string {
	return []string{
		fmt.Sprintf("<1>[%5d.000100] BUG: kernel NULL pointer dereference, address: 0000000000000008 (%s)", ts, what),
		fmt.Sprintf("<1>[%5d.000101] #PF: supervisor read access in kernel mode", ts),
		fmt.Sprintf("<4>[%5d.000102] Oops: 0000 [#1] PREEMPT SMP NOPTI", ts),
		fmt.Sprintf("<4>[%5d.000103] CPU: 1 PID: 4242 Comm: kworker/1:0 Not tainted 6.1.0-13-amd64 #1 Debian 6.1.55-1", ts),
		fmt.Sprintf("<4>[%5d.000104] Hardware name: VMware, Inc. VMware Virtual Platform/440BX Desktop Reference Platform", ts),
		fmt.Sprintf("<4>[%5d.000105] RIP: 0010:vmw_example+0x12/0x40 [vmw_example]", ts),
	}
}

// WritePstore writes a pstore directory and a kdump crash directory under
// root and returns their paths and the records in shipping order:
//
//  1. dmesg-ramoops-0: an Oops, with a 2500-byte line and a control byte;
//  2. dmesg-efi-*: a panic in three parts, written out of order;
//  3. dmesg-efi-*.enc.z: an Oops compressed with raw deflate, as the
//     kernel's pstore compressor writes it;
//  4. dmesg-ramoops-1.enc.z: a panic compressed as a zlib stream;
//  5. <crash>/127.0.0.1-2026-01-14-11:00:00/vmcore-dmesg.txt from kdump.
//
// All are dated January 2026, before any boot the tests run in.
func WritePstore(t testing.TB, root string) (pstore, crash string, recs []Record) {
	t.Helper()
	pstore = filepath.Join(root, "pstore")
	crash = filepath.Join(root, "crash")
	for _, d := range []string{pstore, crash} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(path string, data []byte, at time.Time) string {
		t.Helper()
		if err := os.WriteFile(path, data, 0o440); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, at, at); err != nil {
			t.Fatal(err)
		}
		return path
	}
	text := func(header string, lines []string) []byte {
		return []byte(header + "\n" + strings.Join(lines, "\n") + "\n")
	}

	// 1. ramoops Oops.
	t0 := time.Date(2026, 1, 10, 8, 0, 0, 0, time.UTC)
	l1 := append(oopsLines(101, "ramoops"), LongLine, "<4>[  101.000400] a bell \a and an escape \x1b[0m here")
	f1 := write(filepath.Join(pstore, "dmesg-ramoops-0"), text("Oops#1 Part1", l1), t0)
	ship1 := append(append([]string(nil), l1[:6]...), LongLine[:1020], LongLine[1020:2040], LongLine[2040:],
		`<4>[  101.000400] a bell \x07 and an escape \x1b[0m here`)
	recs = append(recs, Record{Kind: "pstore", Name: "dmesg-ramoops-0", Files: []string{f1}, Time: t0,
		HeaderHas: []string{"backend ramoops", "Oops#1", "written 2026-01-10T08:00:00Z"}, Lines: ship1})

	// 2. efi panic in three parts: Part3 has the oldest text.
	t1 := time.Date(2026, 1, 11, 9, 30, 0, 0, time.UTC)
	efiID := func(at time.Time, part, count int) string {
		return fmt.Sprint((at.Unix()*100+int64(part))*1000 + int64(count))
	}
	parts := map[int][]string{
		3: {"<6>[  200.000001] oldest text of the dump", "<4>[  200.000002] WARNING: CPU: 0 PID: 1 at kernel/x.c:10 x+0x1/0x2"},
		2: {"<4>[  200.000003] Call Trace:", "<4>[  200.000004]  <TASK>", "<4>[  200.000005]  panic+0x100/0x2d0"},
		1: {"<0>[  200.000006] Kernel panic - not syncing: Fatal exception", "<0>[  200.000007] Kernel Offset: disabled"},
	}
	var efiFiles []string
	var efiNames []string
	var shipped2 []string
	for _, p := range []int{2, 1, 3} { // written out of order on purpose
		at := t1
		if p == 1 {
			at = t1.Add(time.Second) // parts may straddle a second
		}
		name := "dmesg-efi-" + efiID(at, p, 1)
		write(filepath.Join(pstore, name), text(fmt.Sprintf("Panic#1 Part%d", p), parts[p]), at)
	}
	for _, p := range []int{3, 2, 1} {
		at := t1
		if p == 1 {
			at = t1.Add(time.Second)
		}
		name := "dmesg-efi-" + efiID(at, p, 1)
		efiNames = append(efiNames, name)
		efiFiles = append(efiFiles, filepath.Join(pstore, name))
		shipped2 = append(shipped2, parts[p]...)
	}
	recs = append(recs, Record{Kind: "pstore", Name: strings.Join(efiNames, " "), Files: efiFiles, Time: t1.Add(time.Second),
		HeaderHas: []string{"backend efi", "Panic#1", "parts 3,2,1 joined"}, Lines: shipped2})

	// 3. efi Oops compressed with raw deflate.
	t2 := time.Date(2026, 1, 12, 10, 0, 0, 0, time.UTC)
	l3 := oopsLines(300, "efi compressed")
	var raw bytes.Buffer
	fw, _ := flate.NewWriter(&raw, flate.BestCompression)
	fw.Write(text("Oops#1 Part1", l3))
	fw.Close()
	n3 := "dmesg-efi-" + efiID(t2, 1, 1) + ".enc.z"
	f3 := write(filepath.Join(pstore, n3), raw.Bytes(), t2)
	recs = append(recs, Record{Kind: "pstore", Name: n3, Files: []string{f3}, Time: t2,
		HeaderHas: []string{"backend efi", "Oops#1", "compressed"}, Lines: l3})

	// 4. ramoops panic compressed as a zlib stream.
	t3 := time.Date(2026, 1, 13, 10, 0, 0, 0, time.UTC)
	l4 := append(oopsLines(400, "zlib"), "<0>[  400.000200] Kernel panic - not syncing: Fatal exception in interrupt")
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write(text("Panic#1 Part1", l4))
	zw.Close()
	f4 := write(filepath.Join(pstore, "dmesg-ramoops-1.enc.z"), z.Bytes(), t3)
	recs = append(recs, Record{Kind: "pstore", Name: "dmesg-ramoops-1.enc.z", Files: []string{f4}, Time: t3,
		HeaderHas: []string{"backend ramoops", "Panic#1", "compressed"}, Lines: l4})

	// Files that are not dmesg records are left alone.
	write(filepath.Join(pstore, "console-ramoops-0"), []byte("console text\n"), t3)

	// 5. kdump.
	t4 := time.Date(2026, 1, 14, 11, 0, 0, 0, time.UTC)
	kdir := filepath.Join(crash, "127.0.0.1-2026-01-14-11:00:00")
	if err := os.MkdirAll(kdir, 0o755); err != nil {
		t.Fatal(err)
	}
	l5 := []string{
		"[    0.000000] Linux version 6.1.0-13-amd64 (debian-kernel@lists.debian.org) #1 SMP PREEMPT_DYNAMIC Debian 6.1.55-1",
		"[    0.000000] Command line: BOOT_IMAGE=/boot/vmlinuz-6.1.0-13-amd64 root=/dev/sda1 crashkernel=256M",
		"[  500.000001] sysrq: Trigger a crash",
		"[  500.000002] Kernel panic - not syncing: sysrq triggered crash",
	}
	f5 := write(filepath.Join(kdir, "vmcore-dmesg.txt"), []byte(strings.Join(l5, "\n")+"\n"), t4)
	recs = append(recs, Record{Kind: "kdump", Name: f5, Files: []string{f5}, Time: t4,
		HeaderHas: []string{"kernel 6.1.0-13-amd64", "written 2026-01-14T11:00:00Z"}, Lines: l5})
	return pstore, crash, recs
}

// CheckShipped compares the guest lines of vmware.log with recs shipped
// in order, each as begin line, lines, end line. It returns a description
// of the first difference, or "".
func CheckShipped(got []string, recs []Record) string {
	i := 0
	next := func() (string, bool) {
		if i >= len(got) {
			return "", false
		}
		i++
		return got[i-1], true
	}
	for _, r := range recs {
		l, ok := next()
		if !ok || !strings.HasPrefix(l, r.Begin()) {
			return fmt.Sprintf("line %d: %q, want the begin line of %s", i, l, r.Name)
		}
		for _, h := range r.HeaderHas {
			if !strings.Contains(l, h) {
				return fmt.Sprintf("begin line %q lacks %q", l, h)
			}
		}
		if !strings.Contains(l, fmt.Sprintf(", %d lines", len(r.Lines))) {
			return fmt.Sprintf("begin line %q does not count %d lines", l, len(r.Lines))
		}
		for _, want := range r.Lines {
			l, ok := next()
			if !ok || l != want {
				return fmt.Sprintf("line %d of %s: %q, want %q", i, r.Name, l, want)
			}
		}
		if l, ok := next(); !ok || l != r.End() {
			return fmt.Sprintf("line %d: %q, want %q", i, l, r.End())
		}
	}
	if i != len(got) {
		return fmt.Sprintf("%d extra lines from %q", len(got)-i, got[i])
	}
	return ""
}

// WriteLengths writes a pstore record into dir whose lines have every
// length mod 4 near the ends of the range (1 to 9 bytes, and 1015 to 1020
// bytes, the longest a vmware.log line may be) and lines longer than 1020
// bytes that must be split, and returns it as it must be shipped. Over the
// backdoor the message layer moves 4 bytes at a time (and the
// high-bandwidth path whole buffers), so these catch a wrong tail.
func WriteLengths(t testing.TB, dir string) Record {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	line := func(n int) string {
		const pat = "0123456789abcdefghijklmnopqrstuvwxyz~!@#$%^&*()_+-=[]{};:,.<>/?|"
		var b strings.Builder
		for i := 0; b.Len() < n; i++ {
			b.WriteByte(pat[(i*7+n)%len(pat)])
		}
		return b.String()
	}
	var text, shipped []string
	for _, n := range []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 1015, 1016, 1017, 1018, 1019, 1020, 1021, 1023, 2040, 2043} {
		l := line(n)
		text = append(text, l)
		for len(l) > 1020 {
			shipped = append(shipped, l[:1020])
			l = l[1020:]
		}
		shipped = append(shipped, l)
	}
	at := time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC)
	path := filepath.Join(dir, "dmesg-ramoops-3")
	if err := os.WriteFile(path, []byte("Oops#1 Part1\n"+strings.Join(text, "\n")+"\n"), 0o440); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, at, at); err != nil {
		t.Fatal(err)
	}
	return Record{Kind: "pstore", Name: "dmesg-ramoops-3", Files: []string{path}, Time: at,
		HeaderHas: []string{"backend ramoops", "Oops#1"}, Lines: shipped}
}
