// Package fusefs is the shared-folders file system: a go-fuse node tree
// whose every operation is an HGFS request through an *hgfs.Client.
//
// Attributes and entries are cached by the kernel for the mount's
// timeouts; names that do not exist are cached as long (negative
// entries). Directory listings feed READDIRPLUS with the attributes the
// host sent in its search replies (no GETATTR per entry), and file
// identity follows the host's inode number, so a file replaced on the
// host (mv new old) is a new inode to the kernel and never shows stale
// data. Truncations and appends invalidate the kernel's copy of the file.
// Names are shown escaped as open-vm-tools' client shows them (a host
// "a/b" is "a!%b"; see hgfsproto.Escape) and reach the host as the same
// name; a name that is not the escaped form of any host name ("]]%") is
// refused (EINVAL) rather than created under another name.
// Permission bits pass through uid=, gid=, umask=, fmask= and dmask=; see
// Options.
//
// What it remembers itself, to save round trips, stays within those
// timeouts: each node's last attributes (to answer setattr without a
// GETATTR, and to skip a chown to the current owner), the names of a
// directory it created or listed (to answer lookups of other names
// negatively, as a negative entry would), and what the host does to the
// files it creates (its umask and owner, relearned every few hundred
// creations), so a new file needs no GETATTR; such attributes reach the
// kernel with no validity.
package fusefs
