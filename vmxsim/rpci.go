package vmxsim

import (
	"context"
	"strconv"
	"strings"

	"github.com/govmtools/govmtools/guestinfo/infoproto"
)

// registerCoreRPCI registers the commands every VMX answers.
func registerCoreRPCI(c *Core) {
	c.HandleRPCI("log", c.rpciLog)
	c.HandleRPCI("info-set", c.rpciInfoSet)
	c.HandleRPCI("info-get", c.rpciInfoGet)
	c.HandleRPCI("tools.set.version", c.rpciSetVersion)
	c.HandleRPCI("tools.set.versiontype", c.rpciSetVersionType)
	c.HandleRPCI("vmx.capability.unified_loop", c.rpciOK)
	c.HandleRPCI("tools.os.statechange.status", c.rpciStateChange)
	c.HandleRPCI("SetGuestInfo", c.rpciSetGuestInfo)
	c.HandleRPCI("SetGuestDiskInfo", c.rpciSetGuestDiskInfo)
}

func (c *Core) rpciOK(ctx context.Context, caller Caller, args []byte) []byte {
	return []byte("1 ")
}

func (c *Core) rpciLog(ctx context.Context, caller Caller, args []byte) []byte {
	c.log.Guest(args)
	return []byte("1 ")
}

// guestinfoKey checks an info-get/info-set key: the guest may only use the
// guestinfo. namespace.
func guestinfoKey(k string) (string, bool) {
	short, ok := strings.CutPrefix(k, "guestinfo.")
	return short, ok && short != ""
}

func (c *Core) rpciInfoSet(ctx context.Context, caller Caller, args []byte) []byte {
	s := text(args)
	key, value, ok := strings.Cut(s, " ")
	if !ok {
		return []byte("0 Two and exactly two arguments expected")
	}
	short, ok := guestinfoKey(key)
	if !ok {
		return []byte("0 Permission denied")
	}
	c.mu.Lock()
	c.guestinfo[short] = value
	c.mu.Unlock()
	return []byte("1 ")
}

func (c *Core) rpciInfoGet(ctx context.Context, caller Caller, args []byte) []byte {
	key := strings.TrimRight(text(args), " ")
	short, ok := guestinfoKey(key)
	if !ok {
		return []byte("0 Permission denied")
	}
	c.mu.Lock()
	v, found := c.guestinfo[short]
	c.mu.Unlock()
	if !found {
		return []byte(ReplyNoValue)
	}
	return append([]byte("1 "), v...)
}

// SetGuestInfoVar sets a guestinfo variable from the host side, as the
// .vmx file or the vSphere API would.
func (c *Core) SetGuestInfoVar(key, value string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.guestinfo[strings.TrimPrefix(key, "guestinfo.")] = value
}

func (c *Core) rpciSetVersion(ctx context.Context, caller Caller, args []byte) []byte {
	v := strings.TrimSpace(text(args))
	if _, err := strconv.ParseUint(v, 10, 32); err != nil {
		return []byte("0 Invalid version")
	}
	c.mu.Lock()
	c.tools.version = v
	c.mu.Unlock()
	c.changed()
	c.log.Host("ToolsVersion: tools.set.version %s", v)
	return []byte("1 ")
}

func (c *Core) rpciSetVersionType(ctx context.Context, caller Caller, args []byte) []byte {
	f := strings.Fields(text(args))
	if len(f) != 2 {
		return []byte("0 Invalid arguments")
	}
	for _, n := range f {
		if _, err := strconv.ParseUint(n, 10, 32); err != nil {
			return []byte("0 Invalid arguments")
		}
	}
	c.mu.Lock()
	c.tools.version = f[0]
	c.tools.versionType = f[1]
	c.mu.Unlock()
	c.changed()
	c.log.Host("ToolsVersion: tools.set.versiontype %s %s", f[0], f[1])
	return []byte("1 ")
}

// capability records a tools.capability.* RPCI as received (without its
// C terminator): the latest value per capability name, in first-seen order.
func (c *Core) capability(name string) RPCIHandler {
	return func(ctx context.Context, caller Caller, args []byte) []byte {
		req := name
		if args != nil {
			req += " " + text(args)
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		for i, old := range c.caps {
			if n, _ := splitRPCI([]byte(old)); n == name {
				c.caps[i] = req
				return []byte("1 ")
			}
		}
		c.caps = append(c.caps, req)
		return []byte("1 ")
	}
}

func (c *Core) rpciStateChange(ctx context.Context, caller Caller, args []byte) []byte {
	f := strings.Fields(text(args))
	if len(f) != 2 {
		return []byte("0 Invalid arguments")
	}
	ok, err1 := strconv.Atoi(f[0])
	state, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil || (ok != 0 && ok != 1) {
		return []byte("0 Invalid arguments")
	}
	c.mu.Lock()
	c.lastState = &StateChange{State: state, Success: ok == 1}
	c.stateChanges++
	// After a successful halt the VM powers off once the guest is gone.
	c.haltPending = ok == 1 && state == 1
	c.mu.Unlock()
	c.log.Host("Tools: state change %d reported, success = %d", state, ok)
	return []byte("1 ")
}

// rpciSetGuestInfo stores "SetGuestInfo  <type> <value>" by type. The raw
// bytes are kept as sent (binary types carry no NUL; text types do).
// Binary payloads that do not decode are refused.
func (c *Core) rpciSetGuestInfo(ctx context.Context, caller Caller, args []byte) []byte {
	typ, payload, err := infoproto.SplitSetGuestInfo(args)
	if err != nil {
		return []byte("0 Invalid arguments")
	}
	if err := checkGuestInfo(typ, payload); err != nil {
		c.lg.Warn("SetGuestInfo refused", "type", typ, "err", err)
		return []byte("0 Invalid guest info")
	}
	value := append([]byte(nil), payload...)
	c.mu.Lock()
	c.guestInfoRaw[typ] = value
	switch typ {
	case infoproto.InfoIPAddressV2:
		delete(c.guestInfoRaw, infoproto.InfoIPAddressV3)
		c.nicUpdates++
	case infoproto.InfoIPAddressV3:
		delete(c.guestInfoRaw, infoproto.InfoIPAddressV2)
		c.nicUpdates++
	case infoproto.InfoDiskFreeSpace:
		c.diskInfoRaw = nil
	}
	c.mu.Unlock()
	c.changed()
	return []byte("1 ")
}

// GuestInfoRaw returns the raw payload last sent with SetGuestInfo for
// typ, and whether one was.
func (c *Core) GuestInfoRaw(typ int) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.guestInfoRaw[typ]
	return append([]byte(nil), v...), ok
}

// DeleteGuestInfoVar removes a guestinfo variable from the host side, as
// a vSphere reconfigure that sets it to "" does.
func (c *Core) DeleteGuestInfoVar(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.guestinfo, strings.TrimPrefix(key, "guestinfo."))
}
