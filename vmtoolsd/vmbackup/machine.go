package vmbackup

// The state machine is a pure function: a state and an input give the next
// state, the reply (for host commands) and the actions the driver carries
// out. Time never enters it: timers fire as inputs (Timeout, KeepAlive is
// the driver's own), so every transition is table-tested without a clock.

// State is the operation's state; the values are vmtoolsd's
// (VmBackupMState), COMPLETE_WAIT (6, Windows only) included for the gap.
type State int

// States.
const (
	Idle State = iota
	ScriptFreeze
	SyncFreezeWait
	SyncFreeze
	SyncThaw
	ScriptThaw
	CompleteWait
	ScriptErrorState
	SyncErrorState
)

var stateNames = [...]string{"IDLE", "SCRIPT_FREEZE", "SYNC_FREEZE_WAIT", "SYNC_FREEZE", "SYNC_THAW", "SCRIPT_THAW", "COMPLETE_WAIT", "SCRIPT_ERROR", "SYNC_ERROR"}

func (s State) String() string {
	if s >= 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "State(?)"
}

// Input is what drives the machine.
type Input int

// Inputs: the first four are host commands (they get a reply), the rest
// come from the driver.
const (
	InStart Input = iota
	InAbort
	InSnapshotDone
	InSnapshotCompleted
	InScriptsOK        // every script of the running phase exited 0
	InScriptsFailed    // a script exited non-zero or was refused
	InScriptsNotRun    // a script could not be started
	InFrozen           // the freeze worker froze everything
	InFreezeFailed     // the freeze worker failed (and thawed what it froze)
	InCommitSendFailed // prov.snapshotCommit did not reach the host
	InThawFailed       // a thaw on snapshotDone failed
	InTimeout          // the abort timer expired
	InRPCFailed        // an event send failed
	InNext             // the spontaneous step out of SYNC_THAW / SYNC_ERROR
)

var inputNames = [...]string{"start", "abort", "snapshotDone", "snapshotCompleted", "scriptsOK", "scriptsFailed", "scriptsNotRun", "frozen", "freezeFailed", "commitSendFailed", "thawFailed", "timeout", "rpcFailed", "next"}

func (i Input) String() string {
	if i >= 0 && int(i) < len(inputNames) {
		return inputNames[i]
	}
	return "Input(?)"
}

// Op names the script phase; it is the scripts' first argument.
type Op string

// Script phases.
const (
	OpFreeze     Op = "freeze"
	OpFreezeFail Op = "freezeFail"
	OpThaw       Op = "thaw"
)

// ActionKind is one thing the driver does.
type ActionKind int

// Actions.
const (
	ActSend         ActionKind = iota // send Event
	ActSendCommit                     // send prov.snapshotCommit; failure feeds InCommitSendFailed
	ActRunScripts                     // start the Op phase; its end feeds InScripts*
	ActCancelScript                   // kill the running phase and wait for it
	ActFreeze                         // start the freeze worker; its end feeds InFrozen/InFreezeFailed
	ActCancelFreeze                   // cancel the worker; whatever it froze is thawed when it returns
	ActThaw                           // thaw now (synchronously); on snapshotDone failure feeds InThawFailed
	ActSendAborted                    // req.aborted 4, "canceled" or "could not be canceled" after a failed thaw
	ActManifest                       // write and announce the manifest (non-fatal)
	ActNext                           // feed InNext
	ActFinalize                       // req.done 0, stop the timers, back to idle
)

// Action is one step for the driver.
type Action struct {
	Kind  ActionKind
	Op    Op    // ActRunScripts
	Event Event // ActSend
}

func send(name string, code Code, msg string) Action {
	return Action{Kind: ActSend, Event: Event{name, code, msg}}
}

func scripts(op Op) Action { return Action{Kind: ActRunScripts, Op: op} }

func act(k ActionKind) Action { return Action{Kind: k} }

// Step is the outcome of one input.
type Step struct {
	Next    State
	Reply   error // for host commands: nil = "OK ", else the Failure
	Actions []Action
	// Ignored is true when the input changed nothing (a stale driver
	// result, or an abort in an error state).
	Ignored bool
}

// Transition is the machine. It is pure.
func Transition(s State, in Input) Step {
	same := Step{Next: s, Ignored: true}
	switch in {
	case InStart:
		if s != Idle {
			return Step{Next: s, Reply: ErrInProgress, Ignored: true}
		}
		return Step{Next: ScriptFreeze, Actions: []Action{send(EvReset, Success, ""), scripts(OpFreeze)}}
	case InSnapshotCompleted:
		// Linux has no completer: vmtoolsd answers this in every state.
		return Step{Next: s, Reply: ErrNoComplete, Ignored: true}
	case InSnapshotDone:
		switch s {
		case Idle:
			return Step{Next: s, Reply: ErrNoOperation, Ignored: true}
		case SyncFreeze:
			return Step{Next: SyncThaw, Actions: []Action{act(ActThaw), act(ActNext)}}
		}
		return Step{Next: s, Reply: ErrUnexpectedDone, Ignored: true}
	case InAbort, InTimeout, InRPCFailed:
		var reply error
		if in == InAbort && s == Idle {
			return Step{Next: s, Reply: ErrNoOperation, Ignored: true}
		}
		switch s {
		case ScriptFreeze:
			return Step{Next: ScriptErrorState, Reply: reply, Actions: []Action{act(ActCancelScript), act(ActSendAborted), scripts(OpFreezeFail)}}
		case SyncFreezeWait:
			return Step{Next: SyncErrorState, Reply: reply, Actions: []Action{act(ActCancelFreeze), act(ActSendAborted), act(ActNext)}}
		case SyncFreeze:
			return Step{Next: SyncErrorState, Reply: reply, Actions: []Action{act(ActThaw), act(ActSendAborted), act(ActNext)}}
		case SyncThaw:
			// Already thawed: govmtools runs the thaw scripts, not
			// freezeFail (vmtoolsd's H5).
			return Step{Next: ScriptThaw, Reply: reply, Actions: []Action{act(ActSendAborted), scripts(OpThaw)}}
		case ScriptThaw:
			return Step{Next: Idle, Reply: reply, Actions: []Action{act(ActCancelScript), act(ActSendAborted), act(ActFinalize)}}
		}
		// Idle (timer or RPC failure), SCRIPT_ERROR, SYNC_ERROR: ignored.
		return Step{Next: s, Reply: reply, Ignored: true}
	case InScriptsOK, InScriptsFailed, InScriptsNotRun:
		msg := MsgScriptFailed
		if in == InScriptsNotRun {
			msg = MsgScriptStart
		}
		switch s {
		case ScriptFreeze:
			if in == InScriptsOK {
				return Step{Next: SyncFreezeWait, Actions: []Action{act(ActFreeze)}}
			}
			return Step{Next: ScriptErrorState, Actions: []Action{send(EvError, ScriptError, msg), send(EvError, UnexpectedError, MsgFreezeOpFailed), scripts(OpFreezeFail)}}
		case ScriptThaw:
			if in == InScriptsOK {
				return Step{Next: Idle, Actions: []Action{act(ActFinalize)}}
			}
			return Step{Next: Idle, Actions: []Action{send(EvError, ScriptError, msg), send(EvError, UnexpectedError, MsgThawOpFailed), act(ActFinalize)}}
		case ScriptErrorState:
			// freezeFail results are not reported, as vmtoolsd.
			return Step{Next: Idle, Actions: []Action{act(ActFinalize)}}
		}
		return same
	case InFrozen:
		if s == SyncFreezeWait {
			return Step{Next: SyncFreeze, Actions: []Action{act(ActSendCommit)}}
		}
	case InFreezeFailed:
		if s == SyncFreezeWait {
			return Step{Next: SyncErrorState, Actions: []Action{send(EvError, SyncError, MsgSyncEnable), act(ActNext)}}
		}
	case InCommitSendFailed:
		if s == SyncFreeze {
			return Step{Next: SyncErrorState, Actions: []Action{act(ActThaw), act(ActNext)}}
		}
	case InThawFailed:
		if s == SyncThaw {
			return Step{Next: SyncErrorState, Actions: []Action{send(EvError, SyncError, MsgSyncNotify)}}
		}
	case InNext:
		switch s {
		case SyncThaw:
			return Step{Next: ScriptThaw, Actions: []Action{act(ActManifest), scripts(OpThaw)}}
		case SyncErrorState:
			return Step{Next: ScriptErrorState, Actions: []Action{scripts(OpFreezeFail)}}
		}
	}
	return same
}
