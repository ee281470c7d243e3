package kmsg

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDecode(t *testing.T) {
	cases := []struct {
		in   string
		want Record
	}{
		{"6,339,5140900,-;NET: Registered protocol family 10\n",
			Record{Level: 6, Seq: 339, Time: 5140900 * time.Microsecond, Flag: '-', Message: []byte("NET: Registered protocol family 10")}},
		{"30,340,5690716,-;udevd[80]: starting version 181\n",
			Record{Facility: 3, Level: 6, Seq: 340, Time: 5690716 * time.Microsecond, Flag: '-', Message: []byte("udevd[80]: starting version 181")}},
		{"6,341,8456107,c;Some text\n",
			Record{Level: 6, Seq: 341, Time: 8456107 * time.Microsecond, Flag: 'c', Message: []byte("Some text")}},
		{"4,342,8456108,+;more\n",
			Record{Level: 4, Seq: 342, Time: 8456108 * time.Microsecond, Flag: '+', Message: []byte("more")}},
		// Extra header fields (caller id on newer kernels) are ignored.
		{"12,90,123,-,caller=T123;marker\\x0atwo \\x5c tab\\x09\n",
			Record{Facility: 1, Level: 4, Seq: 90, Time: 123 * time.Microsecond, Flag: '-', Message: []byte("marker\ntwo \\ tab\t")}},
		{"7,160,424069,-;pci_root PNP0A03:00: host bridge window [io  0x0000-0x0cf7] (ignored)\n SUBSYSTEM=acpi\n DEVICE=+acpi:PNP0A03:00\n",
			Record{Level: 7, Seq: 160, Time: 424069 * time.Microsecond, Flag: '-', Message: []byte("pci_root PNP0A03:00: host bridge window [io  0x0000-0x0cf7] (ignored)"),
				Dict: []KV{{"SUBSYSTEM", "acpi"}, {"DEVICE", "+acpi:PNP0A03:00"}}}},
		// No trailing newline; empty message.
		{"0,1,0,-;", Record{Flag: '-', Seq: 1, Message: []byte{}}},
	}
	for _, c := range cases {
		got, err := Decode([]byte(c.in))
		if err != nil {
			t.Errorf("Decode(%q): %v", c.in, err)
			continue
		}
		if got.Facility != c.want.Facility || got.Level != c.want.Level || got.Seq != c.want.Seq || got.Time != c.want.Time ||
			got.Flag != c.want.Flag || !bytes.Equal(got.Message, c.want.Message) || len(got.Dict) != len(c.want.Dict) {
			t.Errorf("Decode(%q) = %+v, want %+v", c.in, got, c.want)
			continue
		}
		for i := range got.Dict {
			if got.Dict[i] != c.want.Dict[i] {
				t.Errorf("Decode(%q) dict %d = %v, want %v", c.in, i, got.Dict[i], c.want.Dict[i])
			}
		}
		if !strings.Contains(c.in, "caller=") {
			in := c.in
			if !strings.HasSuffix(in, "\n") {
				in += "\n"
			}
			if enc := string(Encode(got)); enc != in {
				t.Errorf("Encode(Decode(%q)) = %q", c.in, enc)
			}
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	bad := []string{
		"", "no semicolon", "6,1,2;missing flag", "x,1,2,-;pri", "6,y,2,-;seq", "6,1,z,-;ts",
		"6,1,2,?;flag", "6,1,2,--;flag", "6,1,99999999999999999999,-;ts overflow",
		"6,1,2,-;msg\nnot a dict line", "6,1,2,-;msg\n =novalue", "6,1\n,2,-;newline in header",
	}
	for _, b := range bad {
		if _, err := Decode([]byte(b)); err == nil {
			t.Errorf("Decode(%q) succeeded", b)
		} else if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrEmpty) {
			t.Errorf("Decode(%q): %v is not ErrMalformed", b, err)
		}
	}
}

func TestPrefix(t *testing.T) {
	r := Record{Facility: 0, Level: 4, Time: 12345678901 * time.Microsecond}
	if got := string(AppendPrefix(nil, r)); got != "<4>[12345.678901] " {
		t.Errorf("prefix %q", got)
	}
	r = Record{Facility: 1, Level: 4, Time: 1500 * time.Microsecond}
	if got := string(AppendPrefix(nil, r)); got != "<12>[    0.001500] " {
		t.Errorf("prefix %q", got)
	}
}

func TestParseLevel(t *testing.T) {
	for s, want := range map[string]int{"emerg": 0, "ALERT": 1, "crit": 2, "err": 3, "error": 3, "warning": 4, "warn": 4, "notice": 5, "info": 6, "debug": 7, "4": 4} {
		got, err := ParseLevel(s)
		if err != nil || got != want {
			t.Errorf("ParseLevel(%q) = %d, %v", s, got, err)
		}
	}
	for _, s := range []string{"", "8", "loud", "-1"} {
		if _, err := ParseLevel(s); !errors.Is(err, ErrLevel) {
			t.Errorf("ParseLevel(%q): %v", s, err)
		}
	}
	if LevelName(3) != "err" || LevelName(9) != "9" {
		t.Error("LevelName")
	}
}

func TestDumpHeader(t *testing.T) {
	good := map[string]DumpHeader{
		"Panic#1 Part1":     {"Panic", 1, 1},
		"Oops#12 Part3":     {"Oops", 12, 3},
		"Emergency#2 Part1": {"Emergency", 2, 1},
	}
	for s, want := range good {
		if h, ok := ParseDumpHeader([]byte(s)); !ok || h != want {
			t.Errorf("ParseDumpHeader(%q) = %v, %v", s, h, ok)
		}
	}
	for _, s := range []string{"", "Panic#1", "Panic#x Part1", "Panic#1 Part0", "<4>[ 1.0] Panic#1 Part1", "#1 Part1", "Panic#1 Part1 extra"} {
		if _, ok := ParseDumpHeader([]byte(s)); ok {
			t.Errorf("ParseDumpHeader(%q) accepted", s)
		}
	}
}

func TestEFIRecordID(t *testing.T) {
	// (1712345678*100 + 3)*1000 + 1
	at, part, count := EFIRecordID(171234567803001)
	if !at.Equal(time.Unix(1712345678, 0)) || part != 3 || count != 1 {
		t.Errorf("EFIRecordID = %v %d %d", at, part, count)
	}
}

func FuzzDecode(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.kmsg")
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		for _, rec := range bytes.SplitAfter(b, []byte("\n")) {
			f.Add(rec)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Decode(b)
		if err != nil {
			return
		}
		if r.Level < 0 || r.Level > 7 || r.Facility < 0 || r.Time < 0 {
			t.Fatalf("out of range: %+v", r)
		}
		// A decoded record re-encodes to something that decodes the same.
		r2, err := Decode(Encode(r))
		if err != nil {
			t.Fatalf("re-decode of %q: %v", Encode(r), err)
		}
		if r2.Seq != r.Seq || r2.Prival() != r.Prival() || r2.Time != r.Time || !bytes.Equal(r2.Message, r.Message) || len(r2.Dict) != len(r.Dict) {
			t.Fatalf("round trip changed %+v into %+v", r, r2)
		}
		AppendPrefix(nil, r)
		ParseDumpHeader(b)
	})
}
