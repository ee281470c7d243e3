// Package fusefs is the shared-folders file system: a go-fuse node tree
// whose every operation is an HGFS request through an *hgfs.Client.
//
// It keeps no cache of its own: attributes and entries are cached by the
// kernel for the mount's timeouts, directory listings feed READDIRPLUS
// with the attributes the host sent in its search replies (no GETATTR
// per entry), and file identity follows the host's inode number, so a
// file replaced on the host (mv new old) is a new inode to the kernel
// and never shows stale data. Truncations and appends invalidate the
// kernel's copy of the file. Permission bits pass through uid=, gid=,
// umask=, fmask= and dmask=; see Options.
package fusefs
