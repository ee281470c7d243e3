package quiesce

import (
	"encoding/json"
	"io"
	"net/http"
	"time"

	"github.com/govmtools/govmtools/vmxsim/vmx"
)

// HandleCtl adds the snapshot routes to the control API:
//
//   - POST /snapshot with Options as JSON runs one operation and answers
//     its Result (with Fault and Message set when it failed);
//   - POST /snapshot/abort sends vmbackup.abort during the running one
//     and answers the guest's reply;
//   - POST /snapshot/delay-done with a duration sets SetDelayDone.
func (d *Driver) HandleCtl(m vmx.CtlMux) {
	m.HandleCtl("POST /snapshot", func(w http.ResponseWriter, r *http.Request) {
		var opts Options
		body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
		if err == nil && len(body) > 0 {
			err = json.Unmarshal(body, &opts)
		}
		if err != nil {
			http.Error(w, "snapshot options: "+err.Error(), http.StatusBadRequest)
			return
		}
		res, _ := d.Snapshot(r.Context(), opts, d.taker())
		vmx.WriteJSON(w, res)
	})
	m.HandleCtl("POST /snapshot/delay-done", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 64))
		delay, err := time.ParseDuration(string(body))
		if err != nil || delay < 0 {
			http.Error(w, "delay-done needs a duration such as 5s", http.StatusBadRequest)
			return
		}
		d.SetDelayDone(delay)
	})
	m.HandleCtl("POST /snapshot/abort", func(w http.ResponseWriter, r *http.Request) {
		reply, err := d.Abort(r.Context())
		if err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(reply)
	})
}

// SetDelayDone (fault injection) holds vmbackup.snapshotDone back d in
// every later operation that sets no DelayDone of its own, those of the
// vSphere front end (govc snapshot.create -q) included; 0 ends it.
func (d *Driver) SetDelayDone(delay time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.delay = delay
}

// SetTake sets what `vmxsim ctl snapshot` takes once the guest is frozen
// (the vSphere front end sets its VM's snapshot); nil takes nothing.
func (d *Driver) SetTake(take Take) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.take = take
}

func (d *Driver) taker() Take {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.take
}
