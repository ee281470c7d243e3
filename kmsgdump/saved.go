package kmsgdump

import (
	"bytes"
	"cmp"
	"compress/flate"
	"compress/zlib"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/govmtools/govmtools/kmsgdump/kmsg"
)

// SavedRecord is one kernel log dump left by a previous boot: a pstore
// dump (its parts joined) or a kdump vmcore-dmesg.txt.
type SavedRecord struct {
	// Key identifies the record's content (a hash of its files' names
	// and bytes); progress and the shipped list are kept by key.
	Key string
	// Kind is "pstore" or "kdump".
	Kind string
	// Name names the record in vmware.log: the pstore file name(s), or
	// the kdump file's path.
	Name string
	// Files are the record's files, in shipping order.
	Files []string
	// Backend is the pstore backend (ramoops, efi, erst, ...); "" for kdump.
	Backend string
	// Dump is the pstore dump header (reason and count) of the first
	// part; zero for kdump.
	Dump kmsg.DumpHeader
	// Parts lists the part numbers joined, in shipping order (oldest
	// text first, so the highest part first).
	Parts []int
	// Time is when the dump was written (the pstore record's time, or the
	// kdump file's modification time).
	Time time.Time
	// Kernel is the "Linux version" line found in the text, if any.
	Kernel string
	// Compressed is true if any file was a compressed (.enc.z) record.
	Compressed bool
	// Notes are remarks shipped after the header (a part missing, a
	// compressed record that could not be decoded, ...).
	Notes []string
	// Lines are the vmware.log line texts of the record, at most MaxLine
	// bytes each.
	Lines [][]byte
}

// pstoreName matches a pstore dmesg file: dmesg-<backend>-<id>[.enc.z].
var pstoreName = regexp.MustCompile(`^dmesg-(.+)-([0-9]+)(\.enc\.z)?$`)

// pstoreFile is one pstore dmesg file, decoded.
type pstoreFile struct {
	path       string
	name       string
	backend    string
	id         uint64
	time       time.Time
	compressed bool
	header     kmsg.DumpHeader
	hasHeader  bool
	text       []byte // without the dump header line
	raw        []byte
	note       string
}

// ScanPstore reads the dmesg records of a pstore directory and joins the
// parts of each dump. Records come back oldest first. A missing directory
// holds no records.
func ScanPstore(dir string) ([]*SavedRecord, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("kmsgdump: pstore: %w", err)
	}
	var files []*pstoreFile
	for _, e := range ents {
		m := pstoreName.FindStringSubmatch(e.Name())
		if m == nil || !e.Type().IsRegular() {
			continue
		}
		path := filepath.Join(dir, e.Name())
		raw, info, err := readSaved(dir, e.Name())
		if errors.Is(err, errNotRegular) || errors.Is(err, fs.ErrNotExist) {
			continue // replaced since the listing
		}
		if err != nil {
			return nil, fmt.Errorf("kmsgdump: pstore: %w", err)
		}
		id, _ := strconv.ParseUint(m[2], 10, 64)
		files = append(files, decodePstoreFile(path, e.Name(), m[1], id, m[3] != "", info.ModTime(), raw))
	}
	return groupPstore(files), nil
}

// decodePstoreFile decompresses a record if needed and splits off its
// dump header.
func decodePstoreFile(path, name, backend string, id uint64, compressed bool, mtime time.Time, raw []byte) *pstoreFile {
	f := &pstoreFile{path: path, name: name, backend: backend, id: id, time: mtime, compressed: compressed, raw: raw}
	text := raw
	if compressed {
		var err error
		text, err = Decompress(raw)
		if err != nil {
			f.note = fmt.Sprintf("%s is a compressed record (%d bytes) this tool cannot decode (%v); it is kept in the archive", name, len(raw), err)
			text = nil
		}
	}
	// Records from pstore's dumper start with "<Reason>#<count> Part<n>".
	first, rest, _ := bytes.Cut(text, []byte{'\n'})
	if h, ok := kmsg.ParseDumpHeader(bytes.TrimRight(first, "\r")); ok {
		f.header, f.hasHeader = h, true
		text = rest
	}
	if !f.hasHeader && backend == "efi" {
		// Old efi records may lack a usable header; the id still tells the part.
		_, part, count := kmsg.EFIRecordID(id)
		if part > 0 {
			f.header = kmsg.DumpHeader{Reason: "Unknown", Count: count, Part: part}
		}
	}
	if f.header.Part == 0 {
		f.header.Part = 1
	}
	f.text = text
	return f
}

// Decompress decodes a compressed pstore record: a zlib stream, or the
// raw deflate stream the kernel's deflate compressor writes. Bytes after
// the stream (ramoops appends an ECC notice) are returned after the text.
func Decompress(raw []byte) ([]byte, error) {
	if len(raw) >= 2 && raw[0]&0x0f == 8 && (uint16(raw[0])<<8|uint16(raw[1]))%31 == 0 {
		br := bytes.NewReader(raw)
		if zr, err := zlib.NewReader(br); err == nil {
			text, err := io.ReadAll(io.LimitReader(zr, maxDecompressed+1))
			if err == nil && len(text) <= maxDecompressed {
				return appendTrailer(text, raw[len(raw)-br.Len():]), nil
			}
		}
	}
	br := bytes.NewReader(raw)
	text, err := io.ReadAll(io.LimitReader(flate.NewReader(br), maxDecompressed+1))
	if err != nil {
		return nil, fmt.Errorf("neither zlib nor deflate: %w", err)
	}
	if len(text) > maxDecompressed {
		return nil, fmt.Errorf("decompresses to more than %d bytes", maxDecompressed)
	}
	return appendTrailer(text, raw[len(raw)-br.Len():]), nil
}

// maxDecompressed bounds a decompressed record (pstore records are at
// most a few hundred KiB; a hostile or corrupt one must not exhaust memory).
const maxDecompressed = 64 << 20

// appendTrailer keeps printable text found after the compressed stream.
func appendTrailer(text, trailer []byte) []byte {
	trailer = bytes.Trim(trailer, "\x00\n ")
	if len(trailer) == 0 {
		return text
	}
	for _, c := range trailer {
		if c < ' ' && c != '\n' && c != '\t' || c >= 0x7f {
			return text
		}
	}
	if len(text) > 0 && text[len(text)-1] != '\n' {
		text = append(text, '\n')
	}
	return append(append(text, trailer...), '\n')
}

// groupPstore joins the parts of each dump: files of one backend with the
// same reason and dump count, written within a minute of each other, with
// distinct part numbers. Within a dump the highest part holds the oldest
// text, so parts are joined from the highest down.
func groupPstore(files []*pstoreFile) []*SavedRecord {
	slices.SortFunc(files, func(a, b *pstoreFile) int {
		return cmp.Or(strings.Compare(a.backend, b.backend), strings.Compare(a.header.Reason, b.header.Reason),
			cmp.Compare(a.header.Count, b.header.Count), a.time.Compare(b.time), cmp.Compare(a.id, b.id))
	})
	var groups [][]*pstoreFile
	for _, f := range files {
		if n := len(groups); n > 0 {
			g := groups[n-1]
			first := g[0]
			if f.hasHeader && first.hasHeader && f.backend == first.backend && f.header.Reason == first.header.Reason &&
				f.header.Count == first.header.Count && f.time.Sub(first.time).Abs() <= time.Minute &&
				!slices.ContainsFunc(g, func(o *pstoreFile) bool { return o.header.Part == f.header.Part }) {
				groups[n-1] = append(g, f)
				continue
			}
		}
		groups = append(groups, []*pstoreFile{f})
	}
	var recs []*SavedRecord
	for _, g := range groups {
		slices.SortFunc(g, func(a, b *pstoreFile) int { return cmp.Compare(b.header.Part, a.header.Part) })
		r := &SavedRecord{Kind: "pstore", Backend: g[0].backend, Dump: g[0].header}
		h := sha256.New()
		var names []string
		var text []byte
		for _, f := range g {
			names = append(names, f.name)
			r.Files = append(r.Files, f.path)
			r.Parts = append(r.Parts, f.header.Part)
			if f.time.After(r.Time) {
				r.Time = f.time
			}
			r.Compressed = r.Compressed || f.compressed
			if f.note != "" {
				r.Notes = append(r.Notes, f.note)
			}
			fmt.Fprintf(h, "%s\x00%d\x00", f.name, len(f.raw))
			h.Write(f.raw)
			text = append(text, f.text...)
			if len(text) > 0 && text[len(text)-1] != '\n' {
				text = append(text, '\n')
			}
		}
		if g[0].hasHeader && len(g) > 0 && g[len(g)-1].header.Part != 1 {
			r.Notes = append(r.Notes, fmt.Sprintf("part 1 (the newest text) of this dump is missing; parts present: %v", r.Parts))
		}
		for i := 1; i < len(g); i++ {
			if g[i-1].header.Part-g[i].header.Part != 1 {
				r.Notes = append(r.Notes, fmt.Sprintf("parts between %d and %d of this dump are missing", g[i-1].header.Part, g[i].header.Part))
			}
		}
		r.Name = strings.Join(names, " ")
		r.Key = "p" + hex.EncodeToString(h.Sum(nil)[:16])
		r.Kernel = kernelVersion(text)
		r.Lines = AppendLogLines(nil, text)
		recs = append(recs, r)
	}
	sortRecords(recs)
	return recs
}

func sortRecords(recs []*SavedRecord) {
	slices.SortStableFunc(recs, func(a, b *SavedRecord) int {
		return cmp.Or(a.Time.Compare(b.Time), strings.Compare(a.Name, b.Name))
	})
}

// crashPatterns are the kdump text dumps looked for under the crash
// directory: kexec-tools' vmcore-dmesg.txt (Fedora, RHEL, Photon, SUSE)
// and kdump-tools' dmesg.<stamp> (Debian, Ubuntu).
var crashPatterns = []string{"*/vmcore-dmesg.txt", "*/dmesg.[0-9]*"}

// ScanCrash reads the kdump dmesg files under dir, oldest first.
func ScanCrash(dir string) ([]*SavedRecord, error) {
	var paths []string
	for _, p := range crashPatterns {
		m, err := filepath.Glob(filepath.Join(dir, p))
		if err != nil {
			return nil, fmt.Errorf("kmsgdump: crash directory: %w", err)
		}
		paths = append(paths, m...)
	}
	var recs []*SavedRecord
	for _, path := range paths {
		// A symlink (to the dump file or to its directory), a FIFO or a
		// device is no dump: skipped, never read.
		if fi, err := os.Lstat(path); err != nil || !fi.Mode().IsRegular() {
			continue
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			continue
		}
		raw, info, err := readSaved(dir, filepath.ToSlash(rel))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNotRegular) {
				continue
			}
			return nil, fmt.Errorf("kmsgdump: crash directory: %w", err)
		}
		h := sha256.New()
		fmt.Fprintf(h, "%s\x00%d\x00", path, len(raw))
		h.Write(raw)
		recs = append(recs, &SavedRecord{
			Key:    "k" + hex.EncodeToString(h.Sum(nil)[:16]),
			Kind:   "kdump",
			Name:   path,
			Files:  []string{path},
			Time:   info.ModTime(),
			Kernel: kernelVersion(raw),
			Lines:  AppendLogLines(nil, raw),
		})
	}
	sortRecords(recs)
	return recs, nil
}

// kernelVersion returns the release from the first "Linux version X" line.
func kernelVersion(text []byte) string {
	i := bytes.Index(text, []byte("Linux version "))
	if i < 0 {
		return ""
	}
	rest := text[i+len("Linux version "):]
	end := bytes.IndexAny(rest, " \n")
	if end < 0 {
		end = len(rest)
	}
	return string(sanitize(rest[:min(end, 100)]))
}
