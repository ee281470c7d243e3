// Package pamauth checks a user name and password with PAM, as
// open-vm-tools' guest operations do: service "vmtoolsd"
// (/etc/pam.d/vmtoolsd), pam_authenticate, pam_acct_mgmt and
// pam_setcred(ESTABLISH_CRED), no session. PAM is a C library, so the
// real check needs cgo (github.com/msteinert/pam/v2); a build without
// cgo refuses every login with ErrUnavailable. Only vmware-vix-helper
// links it: the daemon and every other binary stay CGO_ENABLED=0.
package pamauth

import "errors"

// Service is the PAM service name open-vm-tools uses.
const Service = "vmtoolsd"

// ErrDenied is a refused login (wrong password, unknown user, account
// refused by pam_acct_mgmt or pam_shells).
var ErrDenied = errors.New("pam: authentication denied")

// ErrUnavailable means PAM itself failed (misconfigured stack, no
// module, conversation error) or this build has no PAM.
var ErrUnavailable = errors.New("pam: unavailable")
