package ingest

import (
	"time"

	"github.com/tributary-io/tributary/fragment"
)

// Defaults of the Clock.
const (
	DefaultSlewRate      = 0.05
	DefaultStepThreshold = 2 * time.Second
	DefaultMaxClockSkew  = 10 * time.Minute
	driftWindow          = 10 * time.Second
)

// Clock maps a session's media time (nanoseconds on the decode timeline,
// common to all tracks) to producer wall-clock time.
//
// It starts on the receive clock: the agent's clock when the first packet
// arrived. Once the producer's RTCP sender reports give NTP times, it
// follows them instead (the switch is recorded in Source). Differences are
// slewed at SlewRate of elapsed media time so timestamps never jump;
// a difference above StepThreshold is stepped and reported, and the
// fragment after it is flagged discontinuous. On the receive clock, drift
// between the camera's media clock and the agent's clock is followed the
// same way, against the minimum transit time seen over 10 s windows.
//
// A producer clock more than MaxClockSkew away from the agent's clock is
// not trusted (a camera without NTP set): the receive clock stays in use
// and Untrusted reports it.
type Clock struct {
	// SlewRate is the largest correction per unit of media time. Default 0.05.
	SlewRate float64
	// StepThreshold is the largest difference that is slewed. Default 2 s.
	StepThreshold time.Duration
	// MaxClockSkew is the largest producer-vs-agent clock difference that is
	// trusted. Default 10 min.
	MaxClockSkew time.Duration

	// Source is fragment.ClockReceive or fragment.ClockRTCP.
	Source string
	// Untrusted is set when RTCP time was refused as too far off.
	Untrusted time.Duration

	init     bool
	offset   int64 // wall = media + offset
	target   int64
	maxMedia int64
	winStart int64
	winMin   int64
	haveWin  bool
}

// ClockEvent reports a change made by Clock.Map.
type ClockEvent struct {
	// Switched is set when the clock source changed From -> To.
	Switched bool
	From, To string
	// Diff is the difference between the new and the old mapping.
	Diff time.Duration
	// Stepped is set when producer time stepped by Diff instead of slewing.
	Stepped bool
}

// Map returns the producer time (Unix ns) of media time mediaNs, given the
// receive time of the packet and, when known, its NTP time from RTCP.
func (c *Clock) Map(mediaNs int64, recv time.Time, ntp time.Time, ntpOK bool) (wall int64, ev ClockEvent) {
	if c.SlewRate <= 0 {
		c.SlewRate = DefaultSlewRate
	}
	if c.StepThreshold <= 0 {
		c.StepThreshold = DefaultStepThreshold
	}
	if c.MaxClockSkew <= 0 {
		c.MaxClockSkew = DefaultMaxClockSkew
	}
	recvTarget := recv.UnixNano() - mediaNs
	if ntpOK {
		skew := ntp.Sub(recv)
		if skew > c.MaxClockSkew || skew < -c.MaxClockSkew {
			c.Untrusted = skew
			ntpOK = false
		}
	}
	if !c.init {
		c.init = true
		c.maxMedia = mediaNs
		if ntpOK {
			c.Source = fragment.ClockRTCP
			c.offset = ntp.UnixNano() - mediaNs
		} else {
			c.Source = fragment.ClockReceive
			c.offset = recvTarget
		}
		c.target = c.offset
		c.winStart, c.winMin, c.haveWin = mediaNs, recvTarget, true
		return mediaNs + c.offset, ev
	}
	if ntpOK {
		c.target = ntp.UnixNano() - mediaNs
		if c.Source != fragment.ClockRTCP {
			ev = ClockEvent{Switched: true, From: c.Source, To: fragment.ClockRTCP, Diff: time.Duration(c.target - c.offset)}
			c.Source = fragment.ClockRTCP
		}
	} else if c.Source == fragment.ClockReceive {
		// follow drift against the smallest transit time of each window
		if recvTarget < c.winMin {
			c.winMin = recvTarget
		}
		if time.Duration(mediaNs-c.winStart) >= driftWindow {
			c.target = c.winMin
			c.winStart, c.winMin = mediaNs, recvTarget
		}
	}
	if mediaNs > c.maxMedia {
		elapsed := mediaNs - c.maxMedia
		c.maxMedia = mediaNs
		diff := c.target - c.offset
		if time.Duration(abs(diff)) > c.StepThreshold {
			c.offset = c.target
			ev.Stepped, ev.Diff = true, time.Duration(diff)
			return mediaNs + c.offset, ev
		}
		step := int64(float64(elapsed) * c.SlewRate)
		switch {
		case diff > step:
			c.offset += step
		case diff < -step:
			c.offset -= step
		default:
			c.offset = c.target
		}
	}
	return mediaNs + c.offset, ev
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}
