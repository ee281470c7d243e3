package rpc_test

import (
	"bytes"
	"context"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/govmtools/govmtools/rpc"
	"github.com/govmtools/govmtools/rpc/pollwait"
)

// goid returns the calling goroutine's number (tests only).
func goid() uint64 {
	b := make([]byte, 64)
	b = b[:runtime.Stack(b, false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	n, _ := strconv.ParseUint(string(b[:bytes.IndexByte(b, ' ')]), 10, 64)
	return n
}

// recordingChan records which goroutine receives and which sends, and
// how replies and PINGs go out.
type recordingChan struct {
	rpc.EventChannel
	mu                      sync.Mutex
	recvG, sendG            []uint64
	sends, pings, sendPings int
}

func (c *recordingChan) Receive(ctx context.Context) ([]byte, error) {
	msg, err := c.EventChannel.Receive(ctx)
	c.mu.Lock()
	c.recvG = append(c.recvG, goid())
	c.mu.Unlock()
	return msg, err
}

func (c *recordingChan) Send(ctx context.Context, msg []byte) error {
	c.mu.Lock()
	c.sends++
	c.sendG = append(c.sendG, goid())
	c.mu.Unlock()
	return c.EventChannel.Send(ctx, msg)
}

func (c *recordingChan) Ping(ctx context.Context) error {
	c.mu.Lock()
	c.pings++
	c.mu.Unlock()
	return c.EventChannel.Ping(ctx)
}

func (c *recordingChan) SendPing(ctx context.Context, msg []byte) error {
	c.mu.Lock()
	c.sendPings++
	c.sendG = append(c.sendG, goid())
	c.mu.Unlock()
	return c.EventChannel.(rpc.ReplyPinger).SendPing(ctx, msg)
}

// countingAlarm counts how often the heartbeat's alarm is set and how
// often its waiter wakes.
type countingAlarm struct {
	*pollwait.TimerAlarm
	mu          sync.Mutex
	sets, rings int
}

func (a *countingAlarm) Set(d time.Duration) error {
	a.mu.Lock()
	a.sets++
	a.mu.Unlock()
	return a.TimerAlarm.Set(d)
}

func (a *countingAlarm) Wait(ctx context.Context) error {
	err := a.TimerAlarm.Wait(ctx)
	if err == nil {
		a.mu.Lock()
		a.rings++
		a.mu.Unlock()
	}
	return err
}

// TestEventLoopIdleCost drives the event loop as an idle VMX does, a ping
// every second, and counts what each ping costs the guest: the goroutine
// that received the ping sends the reply, in the same write as the PING
// (ReplyPinger), and the heartbeat alarm is moved once per ping and never
// rings, even for a ping 50 ms late (HeartbeatSlack). When the host falls
// silent, the alarm's PINGs come Heartbeat + HeartbeatSlack after the
// last reply's, then every Heartbeat.
func TestEventLoopIdleCost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var guest *recordingChan
		alarm := &countingAlarm{TimerAlarm: pollwait.NewTimerAlarm()}
		r := runEventLoop(t, &rpc.Loop{Mux: &rpc.Mux{}, App: "toolbox",
			HeartbeatSlack: 100 * time.Millisecond,
			HeartbeatAlarm: func() (rpc.Alarm, error) { return alarm, nil },
		}, func(c rpc.EventChannel) rpc.EventChannel {
			guest = &recordingChan{EventChannel: c}
			return guest
		})
		// Pings at 0, 1, ..., 9 s, one at 10.05 s, then silence.
		for range 10 {
			r.send("ping")
			time.Sleep(time.Second)
		}
		time.Sleep(50 * time.Millisecond)
		r.send("ping")
		synctest.Wait()
		alarm.mu.Lock()
		sets, rings := alarm.sets, alarm.rings
		alarm.mu.Unlock()
		if sets != 11 || rings != 0 {
			t.Errorf("11 pings, one late: alarm set %d times and rang %d times, want 11 and 0", sets, rings)
		}
		time.Sleep(3500 * time.Millisecond)
		synctest.Wait()
		pings, replies := r.stop()
		var want []time.Duration
		for _, ms := range []time.Duration{0, 1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 9000, 10050, 11150, 12150, 13150} {
			want = append(want, ms*time.Millisecond)
		}
		if replies != 11 || !slices.Equal(pings, want) {
			t.Errorf("%d replies, PINGs at %v; want 11 replies and PINGs at %v", replies, pings, want)
		}
		guest.mu.Lock()
		defer guest.mu.Unlock()
		if guest.sendPings != 11 || guest.sends != 0 || guest.pings != 3 {
			t.Errorf("%d replies with a PING, %d without, %d PINGs alone; want 11, 0 and 3 (the silence's)", guest.sendPings, guest.sends, guest.pings)
		}
		for i, g := range guest.sendG {
			if g != guest.recvG[i] {
				t.Fatalf("reply %d sent by goroutine %d, its command received by %d: a hand-off per command", i, g, guest.recvG[i])
			}
		}
		alarm.mu.Lock()
		defer alarm.mu.Unlock()
		if alarm.rings != 3 {
			t.Errorf("alarm rang %d times in 3.5 s of silence, want 3", alarm.rings)
		}
	})
}
