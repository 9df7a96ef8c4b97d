// Package procstat reads CPU time from Linux's /proc: a process's
// (/proc/<pid>/stat) and every core's (/proc/stat), for the load test and
// the scale run.
package procstat

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// ErrMalformed is returned by ParsePid and ParseCPU for text that
// is not in the shape of /proc/<pid>/stat or /proc/stat.
var ErrMalformed = errors.New("procstat: malformed /proc stat")

// CPUTime is a process's CPU time split into user and system time, in
// clock ticks (fields 14 and 15 of /proc/<pid>/stat, utime and stime).
// Both count every thread of the process.
type CPUTime struct {
	User, System int64
}

// sub returns t - u.
func (t CPUTime) Sub(u CPUTime) CPUTime {
	return CPUTime{User: t.User - u.User, System: t.System - u.System}
}

// total returns user plus system time.
func (t CPUTime) Total() int64 { return t.User + t.System }

// ParsePid reads utime and stime from the text of /proc/<pid>/stat.
// The command name (field 2) is in parentheses and may itself hold
// spaces and parentheses, so the fields are counted from the last ')'.
func ParsePid(b []byte) (CPUTime, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return CPUTime{}, fmt.Errorf("%w: no command name", ErrMalformed)
	}
	// After the name: state (field 3) ... utime (14), stime (15).
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return CPUTime{}, fmt.Errorf("%w: %d fields after the command name, want at least 13", ErrMalformed, len(f))
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil || u < 0 || s < 0 {
		return CPUTime{}, fmt.Errorf("%w: utime %q stime %q", ErrMalformed, f[11], f[12])
	}
	return CPUTime{User: u, System: s}, nil
}

// ReadPid reads the CPU time of process pid so far.
func ReadPid(pid int) (CPUTime, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return CPUTime{}, fmt.Errorf("cannot read the CPU time of process %d: %w", pid, err)
	}
	return ParsePid(b)
}

// CoreTime is one CPU's time from /proc/stat, in clock ticks: Total is
// user + nice + system + idle + iowait + irq + softirq + steal (guest time
// is already counted in user), Idle is idle + iowait.
type CoreTime struct {
	Total, Idle int64
}

// BusyPercent returns how busy the core was between a and b, in percent.
func BusyPercent(a, b CoreTime) float64 {
	total := b.Total - a.Total
	if total <= 0 {
		return 0
	}
	return 100 * float64(total-(b.Idle-a.Idle)) / float64(total)
}

// ParseCPU reads the per-CPU lines ("cpu0 ...", "cpu1 ...") of the
// text of /proc/stat, indexed by CPU number. The aggregate "cpu" line is
// left out.
func ParseCPU(b []byte) (map[int]CoreTime, error) {
	cores := map[int]CoreTime{}
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], "cpu") || f[0] == "cpu" {
			continue
		}
		n, err := strconv.Atoi(f[0][3:])
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%w: CPU name %q", ErrMalformed, f[0])
		}
		if len(f) < 5 {
			return nil, fmt.Errorf("%w: %s has %d fields", ErrMalformed, f[0], len(f)-1)
		}
		var c CoreTime
		for i, s := range f[1:min(len(f), 9)] {
			v, err := strconv.ParseInt(s, 10, 64)
			if err != nil || v < 0 || c.Total+v < c.Total {
				return nil, fmt.Errorf("%w: %s field %d is %q", ErrMalformed, f[0], i+1, s)
			}
			c.Total += v
			if i == 3 || i == 4 { // idle, iowait
				c.Idle += v
			}
		}
		cores[n] = c
	}
	if len(cores) == 0 {
		return nil, fmt.Errorf("%w: no cpuN line", ErrMalformed)
	}
	return cores, nil
}

// ReadCPU reads every CPU's time so far.
func ReadCPU() (map[int]CoreTime, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return nil, fmt.Errorf("cannot read /proc/stat: %w", err)
	}
	return ParseCPU(b)
}

// ClockTicks returns the kernel's clock ticks per second (CLK_TCK), from
// getconf; 100, the value on every common Linux build, if that fails.
func ClockTicks() int64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err != nil {
		return 100
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil || n <= 0 {
		return 100
	}
	return n
}

// TicksDuration converts clock ticks to a duration.
func TicksDuration(ticks, clk int64) time.Duration {
	return time.Duration(ticks) * time.Second / time.Duration(clk)
}
