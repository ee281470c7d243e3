package cmdutil

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/govmtools/govmtools/rpc"
)

// OneShot sends one RPCI command over a channel from dial and reports the
// reply as open-vm-tools' vmware-rpctool does, for vmware-rpctool and
// `vmtoolsd --cmd`: on "1 " the payload (without its C terminator), if
// any, and a newline go to stdout and the code is 0; on "0 " the host's
// reason goes to stderr and the code is 1 (1 too for a request over the
// size limit); when the VMX cannot be reached stderr says why, prefixed
// with name, and the code is 2.
func OneShot(ctx context.Context, name string, dial rpc.Dialer, cmd []byte, logger *slog.Logger, stdout, stderr io.Writer) int {
	client := &rpc.Client{Dial: dial, Logger: logger}
	defer client.Close()
	reply, err := client.Call(ctx, cmd)
	var re *rpc.ReplyError
	switch {
	case err == nil:
		// As open-vm-tools' printf("%s\n"): the reply up to its first
		// NUL, and a newline even after an empty reply.
		if i := bytes.IndexByte(reply, 0); i >= 0 {
			reply = reply[:i]
		}
		stdout.Write(append(reply, '\n'))
		return 0
	case errors.As(err, &re):
		fmt.Fprintln(stderr, re.Text)
		return 1
	case errors.Is(err, rpc.ErrTooLarge):
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	default:
		fmt.Fprintf(stderr, "%s: cannot reach the VMX: %v\n", name, err)
		return 2
	}
}
