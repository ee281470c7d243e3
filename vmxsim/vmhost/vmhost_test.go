package vmhost

import (
	"encoding/binary"
	"strings"
	"testing"
)

func TestDevices(t *testing.T) {
	h := New(Options{Devices: []Device{{Name: "ide1:0", UID: 7, Enabled: true}, {Name: "floppy0", Locked: true}}})
	var rec [rdInfoSize]byte
	for off := uint32(0); off < rdInfoSize; off += 4 {
		ax, bx, ok := h.HostCall(CmdGetDeviceListElement, 0<<16|off)
		if !ok || ax != 1 {
			t.Fatalf("offset %d: ax %d ok %v", off, ax, ok)
		}
		binary.LittleEndian.PutUint32(rec[off:], bx)
	}
	if name := strings.TrimRight(string(rec[:32]), "\x00"); name != "ide1:0" || binary.LittleEndian.Uint32(rec[32:]) != 7 || rec[36] != 1 {
		t.Fatalf("record %q", rec)
	}
	if ax, _, _ := h.HostCall(CmdGetDeviceListElement, 2<<16); ax != 0 {
		t.Fatal("a device past the list answered")
	}
	if ax, _, _ := h.HostCall(CmdGetDeviceListElement, 2); ax != 0 {
		t.Fatal("an unaligned offset answered")
	}
	if ax, _, _ := h.HostCall(CmdToggleDevice, 0); ax != 1 || h.State().Devices[0].Enabled {
		t.Fatal("disconnect")
	}
	if ax, _, _ := h.HostCall(CmdToggleDevice, 0x80000001); ax != 0 || h.State().Devices[1].Enabled {
		t.Fatal("a locked device was connected")
	}
	if _, _, ok := h.HostCall(99, 0); ok {
		t.Fatal("an unknown command was handled")
	}
}

func TestSyncTimeOption(t *testing.T) {
	h := New(Options{})
	rpc := h.RPCIHandlers()
	if ax, _, _ := h.HostCall(CmdGetGUIOptions, 0); ax&GUISyncTime != 0 {
		t.Fatal("time sync on by default")
	}
	if r := string(rpc["vmx.set_option"](t.Context(), []byte("synctime 0 1\x00"))); r != "1 " {
		t.Fatalf("set_option: %q", r)
	}
	if ax, _, _ := h.HostCall(CmdGetGUIOptions, 0); ax&GUISyncTime == 0 || !h.State().SyncTime {
		t.Fatal("time sync not on after vmx.set_option")
	}
	if r := string(rpc["vmx.set_option"](t.Context(), []byte("bogus 0 1"))); !strings.HasPrefix(r, "0 ") {
		t.Fatalf("unknown option: %q", r)
	}
}

func TestGuestlibInfo(t *testing.T) {
	h := New(Options{Stats: &Stats{MemBalloonedMB: 12, ResourcePoolPath: "/pool"}, SessionID: 5})
	rpc := h.RPCIHandlers()["guestlib.info.get"]
	r := rpc(t.Context(), []byte("3"))
	if string(r[:2]) != "1 " {
		t.Fatalf("%q", r)
	}
	b := r[2:]
	if binary.LittleEndian.Uint32(b) != 3 || binary.LittleEndian.Uint64(b[4:]) != 5 || int(binary.LittleEndian.Uint32(b[12:])) != len(b)-16 {
		t.Fatalf("header % x", b[:16])
	}
	x := b[16:]
	if binary.BigEndian.Uint32(x) != 20 {
		t.Fatalf("count %d", binary.BigEndian.Uint32(x))
	}
	// ids 1..3 are 12 bytes each, 4 is 16, 5..11 are 12: id 12 starts at
	// 4 + 3*12 + 16 + 7*12.
	at := 4 + 3*12 + 16 + 7*12
	if id, v := binary.BigEndian.Uint32(x[at:]), binary.BigEndian.Uint32(x[at+8:]); id != 12 || v != 12 {
		t.Fatalf("balloon stat: id %d value %d", id, v)
	}
	if r := string(rpc(t.Context(), []byte("2"))); !strings.HasPrefix(r, "0 ") {
		t.Fatalf("version 2: %q", r)
	}
	if r := string(New(Options{NoGuestlib: true}).RPCIHandlers()["guestlib.info.get"](t.Context(), []byte("3"))); r != "0 Unknown command" {
		t.Fatalf("no guestlib: %q", r)
	}
}

func TestWiper(t *testing.T) {
	off, on := New(Options{}).RPCIHandlers(), New(Options{Wiper: true})
	if r := string(off["disk.wiper.enable"](t.Context(), nil)); r != "1 0" {
		t.Fatalf("%q", r)
	}
	if r := string(off["disk.shrink"](t.Context(), nil)); !strings.HasPrefix(r, "0 ") {
		t.Fatalf("shrink while disabled: %q", r)
	}
	if r := string(on.RPCIHandlers()["disk.wiper.enable"](t.Context(), nil)); r != "1 1" {
		t.Fatalf("%q", r)
	}
	on.RPCIHandlers()["disk.shrink"](t.Context(), nil)
	if st := on.State(); st.WiperAsks != 1 || st.Shrinks != 1 {
		t.Fatalf("%+v", st)
	}
}
