package trap

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"io"
	"slices"

	"golang.org/x/arch/x86/x86asm"
)

// ELFInfo is what the trap needs from one executable file: where its cpuid
// instructions are, and where _dl_debug_state is when it is the dynamic
// linker. Offsets are file offsets, so they map to any load address.
type ELFInfo struct {
	// CPUID holds the file offset of every cpuid instruction.
	CPUID []uint64
	// DebugState is the file offset of _dl_debug_state (the r_brk hook
	// the dynamic linker calls after each change to the loaded objects),
	// 0 if the file has none.
	DebugState uint64
	// DebugStateRet is true when _dl_debug_state starts with a plain
	// RET (optionally after ENDBR64), so a breakpoint on it can be
	// answered by emulating the return.
	DebugStateRet bool
	// DebugStateRetOff is the offset of that RET from DebugState.
	DebugStateRetOff uint64
}

// ScanELF finds the cpuid instructions of an ELF file. Searching bytes for
// 0F A2 alone would patch the middle of other instructions, and a linear
// sweep of a whole library is slow, so each candidate is confirmed by
// decoding forward from the nearest known instruction boundary before it:
// a function start from the symbol tables or from the .eh_frame_hdr
// search table (present in stripped libraries), else the section start.
func ScanELF(r io.ReaderAt) (*ELFInfo, error) {
	f, err := elf.NewFile(r)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 {
		return &ELFInfo{}, nil
	}
	info := &ELFInfo{}

	// Function starts, as virtual addresses.
	var starts []uint64
	var debugState uint64
	addSyms := func(syms []elf.Symbol) {
		for _, s := range syms {
			if elf.ST_TYPE(s.Info) == elf.STT_FUNC && s.Value != 0 {
				starts = append(starts, s.Value)
				if s.Name == "_dl_debug_state" {
					debugState = s.Value
				}
			}
		}
	}
	if syms, err := f.Symbols(); err == nil {
		addSyms(syms)
	}
	if syms, err := f.DynamicSymbols(); err == nil {
		addSyms(syms)
	}
	if s := f.Section(".eh_frame_hdr"); s != nil {
		if d, err := s.Data(); err == nil {
			starts = append(starts, ehFrameStarts(d, s.Addr)...)
		}
	}
	slices.Sort(starts)
	starts = slices.Compact(starts)

	for _, sec := range f.Sections {
		if sec.Type != elf.SHT_PROGBITS || sec.Flags&elf.SHF_EXECINSTR == 0 || sec.Size == 0 {
			continue
		}
		data, err := sec.Data()
		if err != nil {
			return nil, fmt.Errorf("trap: read %s: %w", sec.Name, err)
		}
		for i := 0; ; {
			j := bytes.Index(data[i:], []byte{0x0F, 0xA2})
			if j < 0 {
				break
			}
			cand := uint64(i + j)
			if isInstructionAt(data, cand, sectionStart(starts, sec.Addr, sec.Addr+cand)-sec.Addr) {
				info.CPUID = append(info.CPUID, sec.Offset+cand)
			}
			i += j + 1
		}
		if debugState >= sec.Addr && debugState < sec.Addr+sec.Size {
			off := debugState - sec.Addr
			info.DebugState = sec.Offset + off
			code := data[off:min(off+8, uint64(len(data)))]
			switch {
			case bytes.HasPrefix(code, []byte{0xC3}):
				info.DebugStateRet, info.DebugStateRetOff = true, 0
			case bytes.HasPrefix(code, []byte{0xF3, 0x0F, 0x1E, 0xFA, 0xC3}): // endbr64; ret
				info.DebugStateRet, info.DebugStateRetOff = true, 4
			}
		}
	}
	return info, nil
}

// sectionStart returns the last known instruction boundary at or before
// addr, not before the section start.
func sectionStart(starts []uint64, secAddr, addr uint64) uint64 {
	i, found := slices.BinarySearch(starts, addr)
	if found {
		return addr
	}
	if i > 0 && starts[i-1] >= secAddr {
		return starts[i-1]
	}
	return secAddr
}

// isInstructionAt decodes data from start and reports whether an
// instruction boundary falls on cand and that instruction is CPUID.
// Undecodable bytes (padding, data) are skipped one at a time.
func isInstructionAt(data []byte, cand, start uint64) bool {
	pc := start
	for pc < cand {
		inst, err := x86asm.Decode(data[pc:], 64)
		if err != nil || inst.Len == 0 {
			pc++
			continue
		}
		pc += uint64(inst.Len)
	}
	if pc != cand {
		return false
	}
	inst, err := x86asm.Decode(data[cand:], 64)
	return err == nil && inst.Op == x86asm.CPUID
}

// ehFrameStarts reads the binary search table of .eh_frame_hdr: the
// initial location of every FDE, that is every function with unwind
// information, which survives stripping. Only the encoding every x86-64
// toolchain emits (table datarel|sdata4) is read.
func ehFrameStarts(d []byte, hdrAddr uint64) []uint64 {
	const (
		peUdata4  = 0x03
		peSdata4  = 0x0b
		pePCRel   = 0x10
		peDataRel = 0x30
	)
	if len(d) < 12 || d[0] != 1 {
		return nil
	}
	ptrEnc, countEnc, tableEnc := d[1], d[2], d[3]
	if ptrEnc&0x0f != peSdata4 && ptrEnc&0x0f != peUdata4 || countEnc != peUdata4 || tableEnc != peDataRel|peSdata4 {
		return nil
	}
	count := binary.LittleEndian.Uint32(d[8:])
	table := d[12:]
	if uint64(len(table)) < uint64(count)*8 {
		return nil
	}
	out := make([]uint64, 0, count)
	for i := range uint64(count) {
		rel := int32(binary.LittleEndian.Uint32(table[i*8:]))
		out = append(out, uint64(int64(hdrAddr)+int64(rel)))
	}
	return out
}
