package backdoor

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/govmtools/govmtools/internal/testutil"
)

// The arm64 backdoor as VMware documents it (backdoor_def.h and
// open-vm-tools' lib/backdoor for arm64): the x86 registers' values in
// X0..X6, X7<63:32> = X86_IO_MAGIC and X7<31:0> describing the x86 I/O
// instruction, then MRS XZR, MDCCSR_EL0, which traps from EL0 to the
// hypervisor. These constants are the documented bits, not our code's.
const (
	x86IOMagic = 0x86
	w7Dir      = 1 << 2 // IN (else OUT)
	w7With     = 1 << 3 // the magic is in X7<63:32>
	w7Str      = 1 << 4 // REP INS/OUTS
	w7Size4    = 2 << 0 // 4-byte access
)

// mrsXZRMDCCSR is MRS XZR, MDCCSR_EL0 encoded from the architecture:
// MRS is 0xD5300000 | (op0-2)<<19 | op1<<16 | CRn<<12 | CRm<<8 | op2<<5 | Rt,
// and MDCCSR_EL0 is op0=2, op1=3, CRn=0, CRm=1, op2=0; XZR is register 31.
const mrsXZRMDCCSR = 0xD5300000 | (2-2)<<19 | 3<<16 | 0<<12 | 1<<8 | 0<<5 | 31

// hypercallSeq is, per Go function of hypercall_arm64.s, the instruction
// sequence in binutils' syntax: the Go frame's argument loads (the
// pointer to Regs into X8, the buffer pointer for HB into X4/X5 as the
// x86 string instruction's RSI/RDI), then VMware's sequence with the
// Backdoor_proto pointer in X8, and RET.
func hypercallSeq(name string) []string {
	x7 := func(w7 int) []string {
		return []string{
			fmt.Sprintf("mov x7, #0x%x", w7),
			fmt.Sprintf("movk x7, #0x%x, lsl #32", x86IOMagic),
			"mrs xzr, mdccsr_el0",
		}
	}
	seq := []string{"ldr x8, [sp, #8]"}
	switch name {
	case "lbCall": // Backdoor_InOut: IN EAX, DX with the magic, 4 bytes
		seq = append(seq, "ldp x4, x5, [x8, #32]", "ldp x2, x3, [x8, #16]", "ldp x0, x1, [x8]")
		seq = append(seq, x7(w7With|w7Dir|w7Size4)...)
		seq = append(seq, "stp x4, x5, [x8, #32]", "stp x2, x3, [x8, #16]", "stp x0, x1, [x8]")
	case "hbOutCall", "hbInCall": // BackdoorHbOut / BackdoorHbIn
		w7, buf := w7Str|w7With, "x4" // REP OUTSB reads from RSI (X4)
		if name == "hbInCall" {
			w7, buf = w7Str|w7With|w7Dir, "x5" // REP INSB writes to RDI (X5)
		}
		seq = append(seq, "ldp x5, x6, [x8, #40]", "ldp x3, x4, [x8, #24]", "ldp x1, x2, [x8, #8]", "ldr x0, [x8]")
		seq = append(seq, "ldr "+buf+", [sp, #16]")
		seq = append(seq, x7(w7)...)
		seq = append(seq, "stp x5, x6, [x8, #40]", "stp x3, x4, [x8, #24]", "stp x1, x2, [x8, #8]", "str x0, [x8]")
	}
	return append(seq, "ret")
}

var hypercallFuncs = []string{"lbCall", "hbOutCall", "hbInCall"}

// arm64TestBinary builds this package's tests for linux/arm64 (never run
// here: only disassembled) and returns the file.
func arm64TestBinary(t *testing.T) string {
	t.Helper()
	_, err := exec.LookPath("go")
	testutil.Require(t, err == nil, "the go command", "put the Go toolchain on PATH")
	out := filepath.Join(t.TempDir(), "backdoor.arm64.test")
	cmd := exec.Command("go", "test", "-c", "-o", out, ".")
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("GOARCH=arm64 go test -c: %v\n%s", err, b)
	}
	return out
}

// goObjdumpWords is the instruction words of fn (the ABI0 assembly
// function) as go tool objdump prints them.
func goObjdumpWords(t *testing.T, bin, fn string) []uint32 {
	t.Helper()
	b, err := exec.Command("go", "tool", "objdump", "-s", `backdoor\.`+fn+`\.abi0$`, bin).CombinedOutput()
	if err != nil {
		t.Fatalf("go tool objdump: %v\n%s", err, b)
	}
	var words []uint32
	line := regexp.MustCompile(`hypercall_arm64\.s:\d+\s+0x[0-9a-f]+\s+([0-9a-f]{8})\s`)
	for _, m := range line.FindAllStringSubmatch(string(b), -1) {
		w, _ := strconv.ParseUint(m[1], 16, 32)
		words = append(words, uint32(w))
	}
	if len(words) == 0 {
		t.Fatalf("no instructions of %s in go tool objdump's output:\n%s", fn, b)
	}
	return words
}

// TestArm64BackdoorWords checks the instruction words of the built arm64
// object with the Go toolchain alone: each function traps exactly once,
// with the MRS XZR, MDCCSR_EL0 word, right after the MOVZ/MOVK pair that
// sets X7 to the documented magic and I/O description; no other system
// instruction (HVC, SVC, BRK, MSR/MRS) is in it, and X29 is never written.
func TestArm64BackdoorWords(t *testing.T) {
	bin := arm64TestBinary(t)
	wantW7 := map[string]uint64{"lbCall": w7With | w7Dir | w7Size4, "hbOutCall": w7Str | w7With, "hbInCall": w7Str | w7With | w7Dir}
	for _, fn := range hypercallFuncs {
		words := goObjdumpWords(t, bin, fn)
		trap := -1
		for i, w := range words {
			switch {
			case w == mrsXZRMDCCSR:
				if trap >= 0 {
					t.Errorf("%s: a second MRS XZR, MDCCSR_EL0 at word %d", fn, i)
				}
				trap = i
			case w&0xFF000000 == 0xD4000000: // exception generation: SVC, HVC, SMC, BRK
				t.Errorf("%s: exception-generating instruction %08x at word %d", fn, w, i)
			case w&0xFFC00000 == 0xD5000000 || w&0xFFC00000 == 0xD5100000 || w&0xFFE00000 == 0xD5200000 || w&0xFFE00000 == 0xD5300000:
				t.Errorf("%s: system instruction %08x at word %d", fn, w, i)
			}
			if (w&0x1F == 29 && writesRd(w)) || (w&0xFFC00000 == 0xA9400000 && w>>10&0x1F == 29) {
				t.Errorf("%s: word %08x writes X29 (the frame pointer)", fn, w)
			}
		}
		if trap < 2 {
			t.Fatalf("%s: no MRS XZR, MDCCSR_EL0 (%08x) after an X7 set-up: %08x", fn, uint32(mrsXZRMDCCSR), words)
		}
		// MOVZ X7, #imm16, LSL #0 then MOVK X7, #imm16, LSL #32.
		movz, movk := words[trap-2], words[trap-1]
		if movz&0xFFE0001F != 0xD2800007 || movk&0xFFE0001F != 0xF2C00007 {
			t.Fatalf("%s: the two words before the trap are %08x %08x, not MOVZ X7 / MOVK X7, LSL #32", fn, movz, movk)
		}
		x7 := uint64(movz>>5&0xFFFF) | uint64(movk>>5&0xFFFF)<<32
		if want := uint64(x86IOMagic)<<32 | wantW7[fn]; x7 != want {
			t.Errorf("%s: X7 = %#x at the trap, want %#x", fn, x7, want)
		}
	}
}

// writesRd reports whether w is one of the instruction classes in
// hypercall_arm64.s whose bits 4..0 name a destination register (loads,
// moves, data processing); stores name a source there.
func writesRd(w uint32) bool {
	switch {
	case w&0xFFC00000 == 0xA9000000, w&0xFFC00000 == 0xF9000000: // STP, STR (64-bit, offset)
		return false
	case w&0xFFC00000 == 0xA9400000: // LDP: Rt and Rt2
		return true
	}
	return w != 0xD65F03C0 // RET
}

// TestArm64BackdoorDisassembly disassembles the built arm64 object with
// GNU binutils (an independent decoder) and compares each function with
// VMware's sequence, instruction by instruction.
func TestArm64BackdoorDisassembly(t *testing.T) {
	objdump, err := exec.LookPath("aarch64-linux-gnu-objdump")
	testutil.Require(t, err == nil, "aarch64-linux-gnu-objdump", "make test-deps as root (scripts/test-deps.d/47-aarch64-binutils.sh installs Debian's binutils-aarch64-linux-gnu)")
	bin := arm64TestBinary(t)
	sym := "github.com/govmtools/govmtools/rpc/backdoor."
	for _, fn := range hypercallFuncs {
		b, err := exec.Command(objdump, "-d", "--no-show-raw-insn", "--disassemble="+sym+fn+".abi0", bin).CombinedOutput()
		if err != nil {
			t.Fatalf("objdump: %v\n%s", err, b)
		}
		var got []string
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.SplitN(l, "\t", 2)
			if len(f) != 2 || !strings.HasSuffix(strings.TrimSpace(f[0]), ":") {
				continue
			}
			ins := f[1]
			if i := strings.Index(ins, "//"); i >= 0 {
				ins = ins[:i]
			}
			ins = strings.Join(strings.Fields(strings.ReplaceAll(ins, "\t", " ")), " ")
			if strings.HasPrefix(ins, "udf") { // alignment padding after RET
				continue
			}
			got = append(got, ins)
		}
		want := hypercallSeq(fn)
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s disassembles to\n\t%s\nwant VMware's sequence\n\t%s", fn, strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
		}
	}
}
