//go:build !cgo || !linux

package pamauth

// Authenticate refuses: this build has no PAM (it needs cgo on Linux).
func Authenticate(user string, password []byte) error { return ErrUnavailable }
