//go:build cgo && linux

package pamauth

import (
	"errors"
	"fmt"

	"github.com/msteinert/pam/v2"
)

// Authenticate runs the PAM conversation for user: prompts with echo on
// are answered with the user name, with echo off with the password, text
// messages are ignored, anything else fails the conversation. PAM copies
// the answer into C memory it frees itself; the Go string made for it
// cannot be wiped (a limitation of the binding, documented in
// docs/guestops.md), so the helper process exits right after.
func Authenticate(user string, password []byte) error {
	conv := func(s pam.Style, msg string) (string, error) {
		switch s {
		case pam.PromptEchoOff:
			return string(password), nil
		case pam.PromptEchoOn:
			return user, nil
		case pam.TextInfo:
			return "", nil
		}
		return "", errors.New("unexpected PAM message style")
	}
	t, err := pam.StartFunc(Service, user, conv)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	defer t.End()
	for _, step := range []func() error{
		func() error { return t.Authenticate(0) },
		func() error { return t.AcctMgmt(0) },
		func() error { return t.SetCred(pam.EstablishCred) },
	} {
		if err := step(); err != nil {
			return classify(err)
		}
	}
	return nil
}

// classify maps PAM errors as VGAuth does: infrastructure errors are
// ErrUnavailable (VIX 1), every other failure ErrDenied (VIX 3050).
func classify(err error) error {
	var pe pam.Error
	if errors.As(err, &pe) {
		switch pe {
		case pam.ErrOpen, pam.ErrSymbol, pam.ErrService, pam.ErrSystem, pam.ErrBuf, pam.ErrNoModuleData, pam.ErrConv, pam.ErrAbort, pam.ErrBadItem, pam.ErrConvAgain, pam.ErrIncomplete:
			return fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
	}
	return fmt.Errorf("%w: %v", ErrDenied, err)
}
