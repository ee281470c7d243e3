package hgfsd

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/govmtools/govmtools/vmxsim/vmx"
)

// HandleCtl adds the shared-folder routes to the control API:
//
//	POST /hgfs/share/{name}/enable|disable
//	POST /hgfs/enable|disable|restart
//	POST /hgfs/fault   body "truncate N [OP]", "short N [OP]", "none", "nosessions on|off"
func (h *Server) HandleCtl(m vmx.CtlMux) {
	m.HandleCtl("POST /hgfs/share/{name}/{action}", func(w http.ResponseWriter, r *http.Request) {
		var on bool
		switch r.PathValue("action") {
		case "enable":
			on = true
		case "disable":
		default:
			http.Error(w, "want enable or disable", http.StatusBadRequest)
			return
		}
		if err := h.SetShareEnabled(r.PathValue("name"), on); err != nil {
			code := http.StatusBadRequest
			if errors.Is(err, ErrNoShare) {
				code = http.StatusNotFound
			}
			http.Error(w, err.Error(), code)
		}
	})
	m.HandleCtl("POST /hgfs/{action}", func(w http.ResponseWriter, r *http.Request) {
		switch r.PathValue("action") {
		case "enable":
			h.SetEnabled(true)
		case "disable":
			h.SetEnabled(false)
		case "restart":
			h.Restart()
		case "fault":
			body, _ := io.ReadAll(io.LimitReader(r.Body, 256))
			if err := h.applyFault(string(body)); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
			}
		default:
			http.Error(w, "want enable, disable, restart or fault", http.StatusBadRequest)
		}
	})
}

// applyFault applies a fault SPEC of `vmxsim ctl hgfs fault SPEC`.
func (h *Server) applyFault(spec string) error {
	f := strings.Fields(spec)
	switch {
	case len(f) == 2 && f[0] == "nosessions" && (f[1] == "on" || f[1] == "off"):
		h.SetNoSessions(f[1] == "on")
		return nil
	case len(f) == 1 && f[0] == "none":
		return h.InjectFault("none", 0, "")
	case len(f) == 2 || len(f) == 3:
		n, err := strconv.Atoi(f[1])
		if err != nil || n < 0 {
			return fmt.Errorf("fault count %q", f[1])
		}
		op := ""
		if len(f) == 3 {
			op = f[2]
		}
		return h.InjectFault(f[0], n, op)
	}
	return fmt.Errorf("fault %q: want truncate|short N [OP], none or nosessions on|off", spec)
}
