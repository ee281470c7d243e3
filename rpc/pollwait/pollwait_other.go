//go:build !linux

package pollwait

// Waiter sleeps between polls; off Linux it is a TimerAlarm (Go timers).
type Waiter struct{ *TimerAlarm }

// New returns a Waiter.
func New() (*Waiter, error) { return &Waiter{NewTimerAlarm()}, nil }
