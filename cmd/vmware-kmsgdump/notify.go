package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/govmtools/govmtools/systemd"
)

// notifier reports to systemd through the systemd package: READY=1 once
// (later calls only update STATUS), then STOPPING=1. Outside systemd (a
// nil *systemd.Notifier) it does nothing.
type notifier struct {
	sd     *systemd.Notifier
	logger *slog.Logger

	mu      sync.Mutex
	isReady bool
}

func (n *notifier) ready(status string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	var err error
	if n.isReady {
		err = n.sd.Status(status)
	} else {
		n.isReady = true
		err = n.sd.Ready(status)
	}
	if err != nil {
		n.logger.Debug("sd_notify failed", "err", err)
	}
}

func (n *notifier) stopping() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.sd.Stopping(); err != nil {
		n.logger.Debug("sd_notify failed", "err", err)
	}
}

// readyFunc is kmsgdump.Config.Ready: READY=1 with a status saying how
// the saved records went, and what is followed.
func (n *notifier) readyFunc(once bool, kmsgPath string) func(shipped int, err error) {
	return func(shipped int, err error) {
		status := fmt.Sprintf("%d saved kernel log records shipped", shipped)
		if err != nil && !errors.Is(err, context.Canceled) {
			status = fmt.Sprintf("saved kernel log records not all shipped: %v", err)
		}
		if !once {
			status += "; following " + kmsgPath
		}
		n.ready(status)
	}
}
