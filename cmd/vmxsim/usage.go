package main

const usage = `usage:
  vmxsim serve --dir DIR [flags]    serve the simulated VMX on DIR/{tclo,rpci,ctl}.sock
  vmxsim serve --dir DIR --vms N [--vsphere HOST:PORT] [flags]
                                    a fleet: N VMs, each with its own VMX in DIR/vm-0001...,
                                    behind one vSphere front end (VMs NAME-0001...)
  vmxsim run [--dir DIR] [--lb] [--keep-dead-channels] [--clock-offset D] [flags] -- CMD ARGS...
                                    run CMD under the backdoor trap against the same VMX
                                    (DIR defaults to a temporary directory; the host
                                    clock of the time commands runs D ahead)
  vmxsim ctl --dir DIR state        print what the host sees, as JSON
  vmxsim ctl --dir DIR log          print vmware.log
  vmxsim ctl --dir DIR tclo 'CMD'   send one TCLO command to the tools service
  vmxsim ctl --dir DIR guest USER:PASS VERB ARGS   one guest operation (validate, start, ps, kill, ls, mkdir, rm, rmdir, getenv)
  vmxsim ctl --dir DIR power OP     queue a power operation: halt, reboot, poweron, resume, suspend
  vmxsim ctl --dir DIR vsphere      print the vSphere front end's URL (for GOVC_URL)
  vmxsim ctl --dir DIR backdoor checkpoint|reset
                                    (vmxsim run) fail the open channels' next transfer
                                    with CPT, or close every backdoor channel
  vmxsim ctl --dir DIR backdoor kill sendsize|sent|recvstatus [after N]
                                    (vmxsim run) SIGKILL the guest process whose RPCI
                                    message reaches that moment (after N more): as it
                                    announces the message, right after the VMX handled
                                    it, or as it acknowledges the reply
  vmxsim ctl --dir DIR backdoor clock D
                                    (vmxsim run) run the host clock D (e.g. 2h, -30s)
                                    ahead of the real time from now on
  vmxsim ctl --dir DIR share enable|disable NAME
                                    toggle one shared folder, as the host UI does
  vmxsim ctl --dir DIR hgfs enable|disable|restart
                                    shared folders on/off; restart the HGFS server
                                    (every session and handle goes stale)
  vmxsim ctl --dir DIR hgfs fault truncate|short N [OP]|none|nosessions on|off
                                    mangle the next N HGFS replies (to OP, e.g.
                                    GETATTR_V3, if given); refuse sessions
  vmxsim ctl --dir DIR fault hold RPCI [after N] | release [drop] | status
                                    hold requests of an RPCI command unhandled (after
                                    N more pass), then release them (handled) or drop
                                    them (never handled)
  vmxsim ctl --dir DIR snapshot [-no-quiesce] [-args A] [-delay-done D] [-event-timeout D] [-timeout D]
                                    a quiesced snapshot as the VMX drives it (vmbackup);
                                    prints its record with every event, fails with the
                                    vSphere fault
  vmxsim ctl --dir DIR snapshot abort
                                    send vmbackup.abort during the running snapshot
  vmxsim ctl --dir DIR snapshot delay-done D
                                    hold vmbackup.snapshotDone back D in later snapshots
                                    (govc snapshot.create -q included); 0 ends it
  vmxsim --version                  print the version

DIR defaults to $VMXSIM_DIR. 'vmxsim serve --help' and 'vmxsim run --help'
list their flags.
`
