package hgfsd

import (
	"fmt"
	"testing"

	"github.com/govmtools/govmtools/hgfs/hgfsproto"
)

// BenchmarkHGFSCreate is the server side of creating one file the way
// the FUSE client does: negative lookup, create, getattr, close.
func BenchmarkHGFSCreate(b *testing.B) {
	ht := newHGFSTester(b, ShareSpec{Name: "s", Dir: b.TempDir()})
	for i := 0; b.Loop(); i++ {
		p := fmt.Sprintf("s/f%d", i)
		ht.getattr(p)
		fh, st := ht.open(p, hgfsproto.OpenModeWriteOnly, hgfsproto.OpenFlagCreateEmpty)
		if st != 0 {
			b.Fatal(st)
		}
		ht.getattr(p)
		ht.call(hgfsproto.OpCloseV3, hgfsproto.AppendHandleRequest(nil, fh))
	}
}
