package hgfsproto

import "encoding/binary"

// V1 search ops, used by open-vm-tools' vmware-hgfsclient to list the
// shares. Their structs embed the 8-byte legacy header, so the decoders
// here take whole packets and the encoders append whole packets.

// AppendV1SearchOpen appends a V1 SEARCH_OPEN request packet for a CP
// name (HgfsFileName: length u32, bytes, NUL).
func AppendV1SearchOpen(b []byte, id uint32, cp []byte) []byte {
	b = AppendLegacyHeader(b, id, uint32(OpSearchOpen))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(cp)))
	b = append(b, cp...)
	return append(b, 0)
}

// DecodeV1SearchOpen returns the CP name of a V1 SEARCH_OPEN packet.
func DecodeV1SearchOpen(p []byte) ([]byte, error) {
	if err := need(p, 13, "v1 SEARCH_OPEN request"); err != nil {
		return nil, err
	}
	n := binary.LittleEndian.Uint32(p[8:])
	if uint64(n) > uint64(len(p)-13) {
		return nil, malformed("v1 SEARCH_OPEN name length %d exceeds %d bytes", n, len(p)-13)
	}
	return p[12 : 12+int(n)], nil
}

// AppendV1Handle appends a V1 packet of a legacy header and one u32:
// SEARCH_READ is not this, but SEARCH_OPEN replies and SEARCH_CLOSE
// requests are.
func AppendV1Handle(b []byte, id, word, h uint32) []byte {
	b = AppendLegacyHeader(b, id, word)
	return binary.LittleEndian.AppendUint32(b, h)
}

// DecodeV1Handle returns the u32 after the legacy header.
func DecodeV1Handle(p []byte) (uint32, error) {
	if err := need(p, 12, "v1 handle packet"); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(p[8:]), nil
}

// AppendV1SearchRead appends a V1 SEARCH_READ request packet.
func AppendV1SearchRead(b []byte, id, search, offset uint32) []byte {
	b = AppendLegacyHeader(b, id, uint32(OpSearchRead))
	b = binary.LittleEndian.AppendUint32(b, search)
	return binary.LittleEndian.AppendUint32(b, offset)
}

// DecodeV1SearchRead returns the search handle and offset of a V1
// SEARCH_READ packet.
func DecodeV1SearchRead(p []byte) (search, offset uint32, err error) {
	if err := need(p, 16, "v1 SEARCH_READ request"); err != nil {
		return 0, 0, err
	}
	return binary.LittleEndian.Uint32(p[8:]), binary.LittleEndian.Uint32(p[12:]), nil
}

// AppendV1SearchReadReply appends a V1 SEARCH_READ reply packet: header,
// attributes, then the name (length 0 = end of directory).
func AppendV1SearchReadReply(b []byte, id uint32, status Status, a AttrV1, name []byte) []byte {
	b = AppendLegacyHeader(b, id, uint32(status))
	b = a.Append(b)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(name)))
	b = append(b, name...)
	return append(b, 0)
}

// DecodeV1SearchReadReply decodes a V1 SEARCH_READ reply packet.
func DecodeV1SearchReadReply(p []byte) (AttrV1, []byte, error) {
	if err := need(p, 8+AttrV1Size+4, "v1 SEARCH_READ reply"); err != nil {
		return AttrV1{}, nil, err
	}
	a, _ := DecodeAttrV1(p[8:])
	n := binary.LittleEndian.Uint32(p[53:])
	if uint64(n) > uint64(len(p)-57) {
		return AttrV1{}, nil, malformed("v1 SEARCH_READ reply name length %d exceeds %d bytes", n, len(p)-57)
	}
	return a, p[57 : 57+int(n)], nil
}
