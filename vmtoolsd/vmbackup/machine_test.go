package vmbackup

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// TestTransitionTable checks every (state, input) pair of the machine
// against the table of spec §2.2, as govmtools amends it.
func TestTransitionTable(t *testing.T) {
	type row struct {
		from  State
		in    Input
		to    State
		reply error
		acts  string // action kinds and ops/events, space-separated
	}
	rows := []row{
		{Idle, InStart, ScriptFreeze, nil, "send:reset/0/ run:freeze"},
		{Idle, InAbort, Idle, ErrNoOperation, ""},
		{Idle, InSnapshotDone, Idle, ErrNoOperation, ""},
		{Idle, InSnapshotCompleted, Idle, ErrNoComplete, ""},
		{Idle, InTimeout, Idle, nil, ""},
		{Idle, InRPCFailed, Idle, nil, ""},
		{ScriptFreeze, InStart, ScriptFreeze, ErrInProgress, ""},
		{ScriptFreeze, InSnapshotDone, ScriptFreeze, ErrUnexpectedDone, ""},
		{ScriptFreeze, InScriptsOK, SyncFreezeWait, nil, "freeze"},
		{ScriptFreeze, InScriptsFailed, ScriptErrorState, nil, "send:req.error/2/Custom quiesce script failed. send:req.error/5/'VmBackupOnFreeze' operation failed. run:freezeFail"},
		{ScriptFreeze, InScriptsNotRun, ScriptErrorState, nil, "send:req.error/2/Error when starting custom quiesce scripts. send:req.error/5/'VmBackupOnFreeze' operation failed. run:freezeFail"},
		{ScriptFreeze, InAbort, ScriptErrorState, nil, "cancelScript aborted run:freezeFail"},
		{ScriptFreeze, InTimeout, ScriptErrorState, nil, "cancelScript aborted run:freezeFail"},
		{ScriptFreeze, InRPCFailed, ScriptErrorState, nil, "cancelScript aborted run:freezeFail"},
		{SyncFreezeWait, InFrozen, SyncFreeze, nil, "commit"},
		{SyncFreezeWait, InFreezeFailed, SyncErrorState, nil, "send:req.error/3/Error when enabling the sync provider. next"},
		{SyncFreezeWait, InSnapshotDone, SyncFreezeWait, ErrUnexpectedDone, ""},
		{SyncFreezeWait, InAbort, SyncErrorState, nil, "cancelFreeze aborted next"},
		{SyncFreezeWait, InTimeout, SyncErrorState, nil, "cancelFreeze aborted next"},
		{SyncFreeze, InSnapshotDone, SyncThaw, nil, "thaw next"},
		{SyncFreeze, InCommitSendFailed, SyncErrorState, nil, "thaw next"},
		{SyncFreeze, InAbort, SyncErrorState, nil, "thaw aborted next"},
		{SyncFreeze, InTimeout, SyncErrorState, nil, "thaw aborted next"},
		{SyncFreeze, InRPCFailed, SyncErrorState, nil, "thaw aborted next"},
		{SyncFreeze, InStart, SyncFreeze, ErrInProgress, ""},
		{SyncThaw, InThawFailed, SyncErrorState, nil, "send:req.error/3/Error when notifying the sync provider."},
		{SyncThaw, InNext, ScriptThaw, nil, "manifest run:thaw"},
		{SyncThaw, InAbort, ScriptThaw, nil, "aborted run:thaw"},
		{SyncThaw, InSnapshotDone, SyncThaw, ErrUnexpectedDone, ""},
		{ScriptThaw, InScriptsOK, Idle, nil, "finalize"},
		{ScriptThaw, InScriptsFailed, Idle, nil, "send:req.error/2/Custom quiesce script failed. send:req.error/5/'VmBackupOnThaw' operation failed. finalize"},
		{ScriptThaw, InScriptsNotRun, Idle, nil, "send:req.error/2/Error when starting custom quiesce scripts. send:req.error/5/'VmBackupOnThaw' operation failed. finalize"},
		{ScriptErrorState, InScriptsNotRun, Idle, nil, "finalize"},
		{ScriptThaw, InAbort, Idle, nil, "cancelScript aborted finalize"},
		{ScriptThaw, InSnapshotDone, ScriptThaw, ErrUnexpectedDone, ""},
		{SyncErrorState, InNext, ScriptErrorState, nil, "run:freezeFail"},
		{SyncErrorState, InAbort, SyncErrorState, nil, ""},
		{SyncErrorState, InTimeout, SyncErrorState, nil, ""},
		{ScriptErrorState, InAbort, ScriptErrorState, nil, ""},
		{ScriptErrorState, InScriptsOK, Idle, nil, "finalize"},
		{ScriptErrorState, InScriptsFailed, Idle, nil, "finalize"},
		{ScriptErrorState, InSnapshotDone, ScriptErrorState, ErrUnexpectedDone, ""},
		{ScriptErrorState, InStart, ScriptErrorState, ErrInProgress, ""},
	}
	covered := map[[2]int]bool{}
	for _, r := range rows {
		covered[[2]int{int(r.from), int(r.in)}] = true
		st := Transition(r.from, r.in)
		if st.Next != r.to || st.Reply != r.reply || describe(st.Actions) != r.acts {
			t.Errorf("%v + %v = %v reply %v [%s]; want %v reply %v [%s]", r.from, r.in, st.Next, st.Reply, describe(st.Actions), r.to, r.reply, r.acts)
		}
	}
	// Every other pair changes nothing and asks nothing; host commands
	// always get a reply decided above.
	for s := Idle; s <= SyncErrorState; s++ {
		for in := InStart; in <= InNext; in++ {
			if covered[[2]int{int(s), int(in)}] {
				continue
			}
			st := Transition(s, in)
			if in <= InSnapshotCompleted {
				if in == InSnapshotCompleted && st.Reply != ErrNoComplete {
					t.Errorf("%v + %v: reply %v", s, in, st.Reply)
				}
				continue
			}
			if !st.Ignored || st.Next != s || len(st.Actions) != 0 {
				if s == CompleteWait || (in == InTimeout || in == InRPCFailed) && s != Idle {
					continue // abort-like inputs in active states are in the table
				}
				t.Errorf("%v + %v = %+v; want ignored", s, in, st)
			}
		}
	}
}

func describe(acts []Action) string {
	var out []string
	for _, a := range acts {
		switch a.Kind {
		case ActSend:
			out = append(out, fmt.Sprintf("send:%s/%d/%s", a.Event.Name, a.Event.Code, a.Event.Msg))
		case ActRunScripts:
			out = append(out, "run:"+string(a.Op))
		default:
			out = append(out, [...]string{ActSendCommit: "commit", ActCancelScript: "cancelScript", ActFreeze: "freeze", ActCancelFreeze: "cancelFreeze", ActThaw: "thaw", ActSendAborted: "aborted", ActManifest: "manifest", ActNext: "next", ActFinalize: "finalize"}[a.Kind])
		}
	}
	return strings.Join(out, " ")
}

// TestNoFreezeWithoutStart: no input but a start leads out of IDLE, so
// nothing the host sends out of order can freeze.
func TestNoFreezeWithoutStart(t *testing.T) {
	for in := InAbort; in <= InNext; in++ {
		st := Transition(Idle, in)
		if st.Next != Idle || slices.ContainsFunc(st.Actions, func(a Action) bool { return a.Kind == ActFreeze }) {
			t.Errorf("IDLE + %v = %v", in, st.Next)
		}
	}
}

func TestParseStart(t *testing.T) {
	ok := map[string]StartArgs{
		"":                        {Bare: true},
		"1":                       {GenerateManifests: true},
		"0":                       {},
		"0x10":                    {GenerateManifests: true},
		"010":                     {GenerateManifests: true},
		"-1":                      {GenerateManifests: true},
		"1 uuid-a uuid-b":         {GenerateManifests: true, Volumes: " uuid-a uuid-b"},
		"0 /":                     {Volumes: " /"},
		"99999999999999999999999": {GenerateManifests: true},
	}
	for in, want := range ok {
		got, err := ParseStart([]byte(in))
		if err != nil || got != want {
			t.Errorf("ParseStart(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"x", "1x", "0x", "--1", "0x-1", "1\x00", "1\n", "\xff", " ", "08", strings.Repeat("1", MaxStartArgs+1)} {
		if got, err := ParseStart([]byte(in)); err == nil {
			t.Errorf("ParseStart(%q) = %+v; want an error", in, got)
		}
	}
}

func TestEventRequest(t *testing.T) {
	// 26 characters and a NUL: the 27 bytes of open-vm-tools#101.
	if got := string(Event{EvReset, Success, ""}.Request()); got != "vmbackup.eventSet reset 0 \x00" || len(got) != 27 {
		t.Errorf("reset = %q", got)
	}
	if got := string(Event{EvError, ScriptError, MsgScriptFailed}.Request()); got != "vmbackup.eventSet req.error 2 Custom quiesce script failed.\x00" {
		t.Errorf("error = %q", got)
	}
}
