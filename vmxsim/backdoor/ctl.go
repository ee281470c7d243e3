package backdoor

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/govmtools/govmtools/vmxsim/vmx"
)

// HandleCtl adds the backdoor's fault injection to the control API:
// POST /backdoor/checkpoint (InjectCheckpoint), POST /backdoor/reset
// (ResetChannels), POST /backdoor/kill?at=MOMENT[&after=N] (KillAt) and
// POST /backdoor/clock with a Go duration as the body (SetClockOffset).
func (b *Server) HandleCtl(m vmx.CtlMux) {
	m.HandleCtl("POST /backdoor/kill", func(w http.ResponseWriter, r *http.Request) {
		after := 0
		if a := r.URL.Query().Get("after"); a != "" {
			n, err := strconv.Atoi(a)
			if err != nil || n < 0 {
				http.Error(w, "after wants a count", http.StatusBadRequest)
				return
			}
			after = n
		}
		if err := b.KillAt(r.URL.Query().Get("at"), after); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		vmx.WriteJSON(w, b.Stats())
	})
	m.HandleCtl("POST /backdoor/clock", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 64))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		d, err := time.ParseDuration(strings.TrimSpace(string(body)))
		if err != nil {
			http.Error(w, "clock offset: "+err.Error(), http.StatusBadRequest)
			return
		}
		b.SetClockOffset(d)
		vmx.WriteJSON(w, b.Stats())
	})
	m.HandleCtl("POST /backdoor/checkpoint", func(w http.ResponseWriter, r *http.Request) {
		b.InjectCheckpoint()
		vmx.WriteJSON(w, b.Stats())
	})
	m.HandleCtl("POST /backdoor/reset", func(w http.ResponseWriter, r *http.Request) {
		b.ResetChannels()
		vmx.WriteJSON(w, b.Stats())
	})
}
