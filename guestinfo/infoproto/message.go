package infoproto

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
)

// GuestInfoType values (guestInfo.h).
const (
	InfoDNSName       = 1  // hostname, text
	InfoIPAddress     = 2  // V1 binary NIC list (legacy, never sent)
	InfoDiskFreeSpace = 3  // V0 binary disk list
	InfoBuildNumber   = 4  // tools build, text
	InfoOSNameFull    = 5  // long OS name, text
	InfoOSName        = 6  // guest ID, text
	InfoUptime        = 7  // hundredths of a second since boot, text
	InfoMemory        = 8  // binary stats
	InfoIPAddressV2   = 9  // GuestNicProto with at most 64 IPs per NIC
	InfoIPAddressV3   = 10 // GuestNicProto, full
	InfoOSDetailed    = 11 // detailed header + key='value' string
	InfoMax           = 12
)

// Commands.
const (
	SetGuestInfoCommand     = "SetGuestInfo"
	SetGuestDiskInfoCommand = "SetGuestDiskInfo"
)

// MaxMessage is the largest guest message the VMX accepts (64 KiB).
const MaxMessage = 64 << 10

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("infoproto: malformed")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// TextMessage frames a text value: "SetGuestInfo  <type> <value>" and a
// NUL. Note the two spaces after the command, as vmtoolsd sends them.
func TextMessage(typ int, value string) []byte {
	b := BinaryPrefix(typ)
	b = append(b, value...)
	return append(b, 0)
}

// BinaryPrefix returns "SetGuestInfo  <type> "; a binary payload follows
// it directly, with no terminator.
func BinaryPrefix(typ int) []byte {
	return []byte(SetGuestInfoCommand + "  " + strconv.Itoa(typ) + " ")
}

// BinaryMessage frames a binary payload.
func BinaryMessage(typ int, payload []byte) []byte {
	return append(BinaryPrefix(typ), payload...)
}

// DiskInfoMessage frames a SetGuestDiskInfo JSON document (with its NUL).
func DiskInfoMessage(doc []byte) []byte {
	b := make([]byte, 0, len(SetGuestDiskInfoCommand)+len(doc)+2)
	b = append(b, SetGuestDiskInfoCommand+" "...)
	b = append(b, doc...)
	return append(b, 0)
}

// SplitSetGuestInfo splits the arguments of a SetGuestInfo request (the
// bytes after "SetGuestInfo" and one separator) into type and payload.
// Extra spaces before the type are accepted, as the VMX does.
func SplitSetGuestInfo(args []byte) (typ int, payload []byte, err error) {
	rest := bytes.TrimLeft(args, " ")
	i := bytes.IndexByte(rest, ' ')
	if i <= 0 {
		return 0, nil, malformed("SetGuestInfo without a type")
	}
	typ, err = strconv.Atoi(string(rest[:i]))
	if err != nil || typ <= 0 || typ >= InfoMax {
		return 0, nil, malformed("SetGuestInfo type %q", rest[:i])
	}
	return typ, rest[i+1:], nil
}

// Text returns a text payload without its C terminator (and anything a
// buggy sender put after it).
func Text(payload []byte) string {
	if i := bytes.IndexByte(payload, 0); i >= 0 {
		payload = payload[:i]
	}
	return string(payload)
}
