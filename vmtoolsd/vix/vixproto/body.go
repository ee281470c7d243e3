package vixproto

import (
	"bytes"
	"encoding/binary"
	"unicode/utf8"
)

// reader walks a request body; every read is bounds-checked and a
// failure sticks (ErrInvalidMessageBody, or the first error seen).
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) fail(e Error) {
	if r.err == nil {
		r.err = e
	}
}

func (r *reader) take(n int) []byte {
	if r.err != nil || n < 0 || n > len(r.b)-r.off {
		r.fail(ErrInvalidMessageBody)
		return nil
	}
	s := r.b[r.off : r.off+n]
	r.off += n
	return s
}

func (r *reader) u8() uint8 {
	s := r.take(1)
	if s == nil {
		return 0
	}
	return s[0]
}

func (r *reader) u32() uint32 {
	s := r.take(4)
	if s == nil {
		return 0
	}
	return binary.LittleEndian.Uint32(s)
}

func (r *reader) u64() uint64 {
	s := r.take(8)
	if s == nil {
		return 0
	}
	return binary.LittleEndian.Uint64(s)
}

// length reads a u32 length and refuses one larger than the body.
func (r *reader) length() int {
	n := r.u32()
	if uint64(n) > uint64(len(r.b)) {
		r.fail(ErrInvalidMessageBody)
		return 0
	}
	return int(n)
}

// str reads a "String": n bytes with no NUL, then a NUL, valid UTF-8.
func (r *reader) str(n int) string {
	s := r.take(n + 1)
	if s == nil {
		return ""
	}
	if s[n] != 0 || bytes.IndexByte(s[:n], 0) >= 0 {
		r.fail(ErrInvalidMessageBody)
		return ""
	}
	if !utf8.Valid(s[:n]) {
		r.fail(ErrInvalidUTF8)
		return ""
	}
	return string(s[:n])
}

// optStr reads an "optional string": n counts the NUL; 0 is absent.
func (r *reader) optStr(n int) string {
	if n == 0 {
		return ""
	}
	return r.str(n - 1)
}

// strArray reads count NUL-terminated strings filling exactly total bytes.
func (r *reader) strArray(count, total int) []string {
	s := r.take(total)
	if s == nil {
		return nil
	}
	if count > total {
		r.fail(ErrInvalidMessageBody)
		return nil
	}
	out := make([]string, 0, count)
	for range count {
		i := bytes.IndexByte(s, 0)
		if i < 0 {
			r.fail(ErrInvalidMessageBody)
			return nil
		}
		if !utf8.Valid(s[:i]) {
			r.fail(ErrInvalidUTF8)
			return nil
		}
		out = append(out, string(s[:i]))
		s = s[i+1:]
	}
	if len(s) != 0 {
		r.fail(ErrInvalidMessageBody)
		return nil
	}
	return out
}

// writer builds a body.
type writer struct{ b []byte }

func (w *writer) u8(v uint8)   { w.b = append(w.b, v) }
func (w *writer) u32(v uint32) { w.b = binary.LittleEndian.AppendUint32(w.b, v) }
func (w *writer) u64(v uint64) { w.b = binary.LittleEndian.AppendUint64(w.b, v) }
func (w *writer) str(s string) { w.b = append(append(w.b, s...), 0) }
func (w *writer) optStr(s string) {
	if s != "" {
		w.str(s)
	}
}
func optLen(s string) uint32 {
	if s == "" {
		return 0
	}
	return uint32(len(s) + 1)
}

func b2u(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

// StartProgram is VixMsgStartProgramRequest (185).
type StartProgram struct {
	StartMinimized                     bool
	ProgramPath, Arguments, WorkingDir string
	Env                                []string
}

// ParseStartProgram decodes a 185 body. An empty program path or an env
// entry without '=' is ErrInvalidArg.
func ParseStartProgram(body []byte) (*StartProgram, error) {
	r := &reader{b: body}
	p := &StartProgram{StartMinimized: r.u8() != 0}
	pl, al, wl := r.length(), r.length(), r.length()
	ne, el := r.length(), r.length()
	p.ProgramPath, p.Arguments, p.WorkingDir = r.optStr(pl), r.optStr(al), r.optStr(wl)
	p.Env = r.strArray(ne, el)
	if r.err != nil {
		return nil, r.err
	}
	if p.ProgramPath == "" {
		return nil, ErrInvalidArg
	}
	for _, e := range p.Env {
		if !bytes.Contains([]byte(e), []byte("=")) {
			return nil, ErrInvalidArg
		}
	}
	return p, nil
}

// Encode returns the 185 body.
func (p *StartProgram) Encode() []byte {
	w := &writer{}
	w.u8(b2u(p.StartMinimized))
	w.u32(optLen(p.ProgramPath))
	w.u32(optLen(p.Arguments))
	w.u32(optLen(p.WorkingDir))
	n := 0
	for _, e := range p.Env {
		n += len(e) + 1
	}
	w.u32(uint32(len(p.Env)))
	w.u32(uint32(n))
	w.optStr(p.ProgramPath)
	w.optStr(p.Arguments)
	w.optStr(p.WorkingDir)
	for _, e := range p.Env {
		w.str(e)
	}
	return w.b
}

// ListProcesses is VixMsgListProcessesExRequest (186).
type ListProcesses struct {
	Key, Offset uint32
	Pids        []uint64
}

// ParseListProcesses decodes a 186 body; the pid count is checked
// against the body before the array is allocated.
func ParseListProcesses(body []byte) (*ListProcesses, error) {
	r := &reader{b: body}
	p := &ListProcesses{Key: r.u32(), Offset: r.u32()}
	n := r.u32()
	if r.err == nil && uint64(n)*8 != uint64(len(body)-r.off) {
		return nil, ErrInvalidMessageBody
	}
	p.Pids = make([]uint64, 0, int(n))
	for range n {
		p.Pids = append(p.Pids, r.u64())
	}
	if r.err != nil {
		return nil, r.err
	}
	return p, nil
}

// Encode returns the 186 body.
func (p *ListProcesses) Encode() []byte {
	w := &writer{}
	w.u32(p.Key)
	w.u32(p.Offset)
	w.u32(uint32(len(p.Pids)))
	for _, pid := range p.Pids {
		w.u64(pid)
	}
	return w.b
}

// KillProcess is VixCommandKillProcessRequest (193, 85).
type KillProcess struct {
	Pid     uint64
	Options uint32
}

// ParseKillProcess decodes a 193 body (exactly 12 bytes).
func ParseKillProcess(body []byte) (*KillProcess, error) {
	if len(body) != 12 {
		return nil, ErrInvalidMessageBody
	}
	r := &reader{b: body}
	return &KillProcess{Pid: r.u64(), Options: r.u32()}, nil
}

// Encode returns the 193 body.
func (p *KillProcess) Encode() []byte {
	w := &writer{}
	w.u64(p.Pid)
	w.u32(p.Options)
	return w.b
}

// ReadEnv is VixMsgReadEnvironmentVariablesRequest (187); no names means
// every variable.
type ReadEnv struct{ Names []string }

// ParseReadEnv decodes a 187 body.
func ParseReadEnv(body []byte) (*ReadEnv, error) {
	r := &reader{b: body}
	n, l := r.length(), r.length()
	p := &ReadEnv{Names: r.strArray(n, l)}
	if r.err != nil {
		return nil, r.err
	}
	return p, nil
}

// Encode returns the 187 body.
func (p *ReadEnv) Encode() []byte {
	w := &writer{}
	n := 0
	for _, e := range p.Names {
		n += len(e) + 1
	}
	w.u32(uint32(len(p.Names)))
	w.u32(uint32(n))
	for _, e := range p.Names {
		w.str(e)
	}
	return w.b
}

// ListFiles is VixMsgListFilesRequest (177; 188 uses only the path).
type ListFiles struct {
	Options           int32
	Path, Pattern     string
	Index, MaxResults int32
	Offset            uint64
}

// ParseListFiles decodes a 177 or 188 body. An empty path is
// ErrInvalidArg.
func ParseListFiles(body []byte) (*ListFiles, error) {
	r := &reader{b: body}
	p := &ListFiles{Options: int32(r.u32())}
	pl, tl := r.length(), r.length()
	p.Index, p.MaxResults, p.Offset = int32(r.u32()), int32(r.u32()), r.u64()
	p.Path = r.str(pl)
	if tl > 0 {
		p.Pattern = r.str(tl)
	}
	if r.err != nil {
		return nil, r.err
	}
	if p.Path == "" {
		return nil, ErrInvalidArg
	}
	return p, nil
}

// Encode returns the 177/188 body.
func (p *ListFiles) Encode() []byte {
	w := &writer{}
	w.u32(uint32(p.Options))
	w.u32(uint32(len(p.Path)))
	w.u32(uint32(len(p.Pattern)))
	w.u32(uint32(p.Index))
	w.u32(uint32(p.MaxResults))
	w.u64(p.Offset)
	w.str(p.Path)
	if p.Pattern != "" {
		w.str(p.Pattern)
	}
	return w.b
}

// FileOp is the path-carrying body of 194 (VixMsgSimpleFileRequest), 195
// (VixMsgDeleteDirectoryRequest: Flag = recursive), 178
// (VixMsgCreateFileRequestEx: Flag = create parents) and 189
// (VixCommandInitiateFileTransferToGuestRequest: Flag = overwrite).
type FileOp struct {
	Op      uint32
	Options int32
	Path    string
	Flag    bool
}

// ParseFileOp decodes the body of op (194, 195, 178 or 189). An empty
// path is ErrInvalidArg.
func ParseFileOp(op uint32, body []byte) (*FileOp, error) {
	r := &reader{b: body}
	p := &FileOp{Op: op, Options: int32(r.u32())}
	pl := r.length()
	switch op {
	case OpDeleteDirectoryEx, OpCreateDirectoryEx:
		r.u32() // filePropertiesLength: not parsed, as the guest does not
		p.Flag = r.u8() != 0
	case OpInitiateTransferTo:
		p.Flag = r.u8() != 0
	case OpDeleteFileEx:
	default:
		return nil, ErrInvalidMessageBody
	}
	p.Path = r.str(pl)
	if r.err != nil {
		return nil, r.err
	}
	if p.Path == "" {
		return nil, ErrInvalidArg
	}
	return p, nil
}

// Encode returns the body.
func (p *FileOp) Encode() []byte {
	w := &writer{}
	w.u32(uint32(p.Options))
	w.u32(uint32(len(p.Path)))
	switch p.Op {
	case OpDeleteDirectoryEx, OpCreateDirectoryEx:
		w.u32(0)
		w.u8(b2u(p.Flag))
	case OpInitiateTransferTo:
		w.u8(b2u(p.Flag))
	}
	w.str(p.Path)
	return w.b
}

// Rename is VixCommandRenameFileRequestEx (179, 180).
type Rename struct {
	Options   int32
	Old, New  string
	Overwrite bool
}

// ParseRename decodes a 179/180 body.
func ParseRename(body []byte) (*Rename, error) {
	r := &reader{b: body}
	p := &Rename{Options: int32(r.u32())}
	ol, nl := r.length(), r.length()
	r.u32() // filePropertiesLength
	p.Overwrite = r.u8() != 0
	p.Old, p.New = r.str(ol), r.str(nl)
	if r.err != nil {
		return nil, r.err
	}
	if p.Old == "" || p.New == "" {
		return nil, ErrInvalidArg
	}
	return p, nil
}

// Encode returns the 179/180 body.
func (p *Rename) Encode() []byte {
	w := &writer{}
	w.u32(uint32(p.Options))
	w.u32(uint32(len(p.Old)))
	w.u32(uint32(len(p.New)))
	w.u32(0)
	w.u8(b2u(p.Overwrite))
	w.str(p.Old)
	w.str(p.New)
	return w.b
}

// CreateTemp is VixMsgCreateTempFileRequestEx (181, 182).
type CreateTemp struct {
	Options             int32
	Prefix, Suffix, Dir string
}

// ParseCreateTemp decodes a 181/182 body; the body must be exactly the
// fixed part, the three strings and the property list.
func ParseCreateTemp(body []byte) (*CreateTemp, error) {
	r := &reader{b: body}
	p := &CreateTemp{Options: int32(r.u32())}
	pl, sl, dl, ll := r.length(), r.length(), r.length(), r.length()
	if r.err == nil && uint64(20)+uint64(pl)+uint64(sl)+uint64(dl)+3+uint64(ll) != uint64(len(body)) {
		return nil, ErrInvalidMessageBody
	}
	p.Prefix, p.Suffix, p.Dir = r.str(pl), r.str(sl), r.str(dl)
	if r.err != nil {
		return nil, r.err
	}
	return p, nil
}

// Encode returns the 181/182 body.
func (p *CreateTemp) Encode() []byte {
	w := &writer{}
	w.u32(uint32(p.Options))
	w.u32(uint32(len(p.Prefix)))
	w.u32(uint32(len(p.Suffix)))
	w.u32(uint32(len(p.Dir)))
	w.u32(0)
	w.str(p.Prefix)
	w.str(p.Suffix)
	w.str(p.Dir)
	return w.b
}

// SetAttrs is VixMsgSetGuestFileAttributesRequest (183).
type SetAttrs struct {
	Options             int32
	AccessTime, ModTime int64
	Owner, Group, Perms int32
	Hidden, ReadOnly    bool
	Path                string
}

// ParseSetAttrs decodes a 183 body.
func ParseSetAttrs(body []byte) (*SetAttrs, error) {
	r := &reader{b: body}
	p := &SetAttrs{Options: int32(r.u32()), AccessTime: int64(r.u64()), ModTime: int64(r.u64())}
	p.Owner, p.Group, p.Perms = int32(r.u32()), int32(r.u32()), int32(r.u32())
	p.Hidden, p.ReadOnly = r.u8() != 0, r.u8() != 0
	p.Path = r.str(r.length())
	if r.err != nil {
		return nil, r.err
	}
	if p.Path == "" {
		return nil, ErrInvalidArg
	}
	return p, nil
}

// Encode returns the 183 body.
func (p *SetAttrs) Encode() []byte {
	w := &writer{}
	w.u32(uint32(p.Options))
	w.u64(uint64(p.AccessTime))
	w.u64(uint64(p.ModTime))
	w.u32(uint32(p.Owner))
	w.u32(uint32(p.Group))
	w.u32(uint32(p.Perms))
	w.u8(b2u(p.Hidden))
	w.u8(b2u(p.ReadOnly))
	w.u32(uint32(len(p.Path)))
	w.str(p.Path)
	return w.b
}

// HgfsPacket is VixCommandHgfsSendPacket (84): the HGFS request packet.
type HgfsPacket struct {
	Timeout int32
	Packet  []byte
}

// ParseHgfsPacket decodes an 84 body: hgfsPacketSize must be non-zero
// and equal the bytes that follow.
func ParseHgfsPacket(body []byte) (*HgfsPacket, error) {
	r := &reader{b: body}
	n := r.length()
	p := &HgfsPacket{Timeout: int32(r.u32())}
	p.Packet = r.take(n)
	if r.err != nil {
		return nil, r.err
	}
	if n == 0 || r.off != len(r.b) {
		return nil, ErrInvalidMessageBody
	}
	return p, nil
}

// Encode returns the 84 body.
func (p *HgfsPacket) Encode() []byte {
	w := &writer{}
	w.u32(uint32(len(p.Packet)))
	w.u32(uint32(p.Timeout))
	w.b = append(w.b, p.Packet...)
	return w.b
}

// CheckBody decodes body with the parser of op and returns its error:
// ErrInvalidMessageBody for a malformed body (wrong counts or lengths, a
// string without its NUL), ErrInvalidArg or ErrInvalidUTF8 for bad
// values. Opcodes without a body parser (ValidateCredentials, the
// credential ops, unknown ones) pass.
func CheckBody(op uint32, body []byte) error {
	var err error
	switch op {
	case OpStartProgram:
		_, err = ParseStartProgram(body)
	case OpListProcessesEx:
		_, err = ParseListProcesses(body)
	case OpTerminateProcess, OpLegacyKillProcess:
		_, err = ParseKillProcess(body)
	case OpReadEnvVariables:
		_, err = ParseReadEnv(body)
	case OpListFiles, OpInitiateTransferFrom:
		_, err = ParseListFiles(body)
	case OpMoveFileEx, OpMoveDirectory:
		_, err = ParseRename(body)
	case OpCreateTempFileEx, OpCreateTempDirectory:
		_, err = ParseCreateTemp(body)
	case OpSetFileAttributes:
		_, err = ParseSetAttrs(body)
	case OpCreateDirectoryEx, OpDeleteFileEx, OpDeleteDirectoryEx, OpInitiateTransferTo:
		_, err = ParseFileOp(op, body)
	case OpHgfsSendPacket:
		_, err = ParseHgfsPacket(body)
	}
	return err
}
