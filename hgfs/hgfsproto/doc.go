// Package hgfsproto is the HGFS (Host-Guest File System) wire codec: the
// 52-byte V4 header and the 8-byte legacy header, op codes, status codes,
// CP names with their trailing NUL, FILETIME times, attributes and the V3
// (plus session V4 and search V1) request and reply layouts.
//
// It is pure: byte slices in, values out, no I/O and no state. Every
// decoder checks lengths against the bytes it was given and returns an
// error wrapping ErrMalformed instead of reading past them, since replies
// come from the host and requests from an untrusted guest. Both the guest
// client (hgfs) and the simulated host (vmxsim) use it; golden vectors in
// testdata pin it to the layouts of docs/architecture.md section 7.
//
// Encoders are append-style (AppendXxx(b []byte) []byte) so a caller can
// build a whole RPCI message ("f " + header + op) in one buffer.
package hgfsproto
