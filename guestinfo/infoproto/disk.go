package infoproto

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"strconv"
	"strings"
)

// Disk is one file system as reported to the host.
type Disk struct {
	Name    string // mount point
	Free    uint64 // bytes available
	Size    uint64 // bytes total
	FSType  string // e.g. "ext4"; empty leaves the key out
	Devices []string
}

// Disk info limits.
const (
	DiskInfoVersion1 = 1
	// MaxV0Disks is the V0 count byte's range.
	MaxV0Disks = 255
	// V0NameLen is PARTITION_NAME_SIZE: names are cut to 99 bytes.
	V0NameLen   = 100
	v0EntrySize = 8 + 8 + V0NameLen
)

// EncodeDiskInfoV1 builds the SetGuestDiskInfo JSON document, byte for byte
// as vmtoolsd formats it (without the command and NUL; see
// DiskInfoMessage). The name is base64 of the mount point; numbers are
// quoted decimals.
func EncodeDiskInfoV1(disks []Disk) []byte {
	var sb strings.Builder
	sb.WriteString(diskV1Header)
	for i, d := range disks {
		if i > 0 {
			sb.WriteString("},\n")
		}
		writeDiskV1(&sb, d)
	}
	if len(disks) > 0 {
		sb.WriteString("}\n")
	}
	sb.WriteString("]}")
	return []byte(sb.String())
}

const diskV1Header = "{\n\"version\":\"1\",\n\"disks\":[\n"

// writeDiskV1 writes one entry without its closing brace.
func writeDiskV1(sb *strings.Builder, d Disk) {
	sb.WriteString(`{"name":"`)
	sb.WriteString(base64.StdEncoding.EncodeToString([]byte(d.Name)))
	sb.WriteString(`","free":"`)
	sb.WriteString(strconv.FormatUint(d.Free, 10))
	sb.WriteString(`","size":"`)
	sb.WriteString(strconv.FormatUint(d.Size, 10))
	sb.WriteByte('"')
	if d.FSType != "" {
		sb.WriteString(`,"fstype":`)
		sb.WriteString(jsonString(d.FSType))
	}
	if len(d.Devices) > 0 {
		sb.WriteString(`,"devices":[`)
		for j, dev := range d.Devices {
			if j > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString(jsonString(dev))
		}
		sb.WriteByte(']')
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s) // a string always marshals
	return string(b)
}

type diskJSON struct {
	Version string `json:"version"`
	Disks   []struct {
		Name    string   `json:"name"`
		Free    string   `json:"free"`
		Size    string   `json:"size"`
		FSType  string   `json:"fstype"`
		Devices []string `json:"devices"`
		UUID    string   `json:"uuid"`
	} `json:"disks"`
}

// DecodeDiskInfoV1 parses a SetGuestDiskInfo JSON document (a trailing NUL
// is allowed).
func DecodeDiskInfoV1(b []byte) ([]Disk, error) {
	b = []byte(strings.TrimRight(string(b), "\x00"))
	var doc diskJSON
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, malformed("disk info JSON: %v", err)
	}
	if doc.Version != "1" {
		return nil, malformed("disk info version %q", doc.Version)
	}
	disks := make([]Disk, 0, len(doc.Disks))
	for i, e := range doc.Disks {
		name, err := base64.StdEncoding.DecodeString(e.Name)
		if err != nil {
			return nil, malformed("disk %d name: %v", i, err)
		}
		free, err1 := strconv.ParseUint(e.Free, 10, 64)
		size, err2 := strconv.ParseUint(e.Size, 10, 64)
		if err1 != nil || err2 != nil {
			return nil, malformed("disk %d sizes %q/%q", i, e.Free, e.Size)
		}
		disks = append(disks, Disk{Name: string(name), Free: free, Size: size, FSType: e.FSType, Devices: e.Devices})
	}
	return disks, nil
}

// EncodeDiskInfoV0 builds the INFO_DISK_FREE_SPACE payload: a count byte
// and 116-byte entries (u64 free LE, u64 total LE, char name[100]), plus
// the two zero bytes vmtoolsd's over-allocation always sends. At most
// MaxV0Disks entries; names are cut to 99 bytes.
func EncodeDiskInfoV0(disks []Disk) []byte {
	if len(disks) > MaxV0Disks {
		disks = disks[:MaxV0Disks]
	}
	b := make([]byte, 1+len(disks)*v0EntrySize+2)
	b[0] = byte(len(disks))
	for i, d := range disks {
		e := b[1+i*v0EntrySize:]
		binary.LittleEndian.PutUint64(e, d.Free)
		binary.LittleEndian.PutUint64(e[8:], d.Size)
		name := cstr(d.Name)
		if len(name) > V0NameLen-1 {
			name = name[:V0NameLen-1]
		}
		copy(e[16:16+V0NameLen], name)
	}
	return b
}

// DecodeDiskInfoV0 parses an INFO_DISK_FREE_SPACE payload; up to two
// trailing bytes (vmtoolsd's padding) are ignored.
func DecodeDiskInfoV0(b []byte) ([]Disk, error) {
	if len(b) < 1 {
		return nil, malformed("empty V0 disk info")
	}
	n := int(b[0])
	need := 1 + n*v0EntrySize
	if len(b) < need || len(b) > need+2 {
		return nil, malformed("V0 disk info of %d bytes for %d entries", len(b), n)
	}
	disks := make([]Disk, 0, n)
	for i := range n {
		e := b[1+i*v0EntrySize:]
		name, ok := cfield(e[16 : 16+V0NameLen])
		if !ok {
			return nil, malformed("V0 disk %d name not terminated", i)
		}
		disks = append(disks, Disk{
			Free: binary.LittleEndian.Uint64(e),
			Size: binary.LittleEndian.Uint64(e[8:]),
			Name: name,
		})
	}
	return disks, nil
}

// FitDisks returns the longest prefix of disks whose V1 message fits
// budget bytes (command, JSON and NUL).
func FitDisks(disks []Disk, budget int) []Disk {
	size := len(SetGuestDiskInfoCommand) + 2 + len(diskV1Header) + len("]}")
	for i, d := range disks {
		var sb strings.Builder
		writeDiskV1(&sb, d)
		size += sb.Len() + len("}\n") // "},\n" between entries, "}\n" after the last
		if i > 0 {
			size++
		}
		if size > budget {
			return disks[:i]
		}
	}
	return disks
}
