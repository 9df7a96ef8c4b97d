package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hookgate/hookgate/internal/procstat"
)

// hookgate is one running bin/hookgate process, on addresses of its own.
type hookgate struct {
	cmd     *exec.Cmd
	started time.Time // just before the process started
	api     string    // -listen address
	ops     string    // -ops-listen address
	logPath string    // its stdout and stderr
	done    chan struct{}
	err     error // of Wait, once done is closed
}

// startHookgate starts bin on dataDir in front of upstream, with its
// output in logPath. It runs in a process group of its own, so that a
// Ctrl-C in the terminal reaches only this command, which stops it; and
// it is killed if this command dies first.
func startHookgate(bin, dataDir, upstream, logPath string) (*hookgate, error) {
	api, err := freeAddr()
	if err != nil {
		return nil, err
	}
	ops, err := freeAddr()
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child holds its own copy
	cmd := exec.Command(bin, "-listen", api, "-ops-listen", ops, "-upstream", upstream,
		"-data-dir", dataDir, "-allow-cidrs", "127.0.0.0/8", "-pprof") // -profile reads /debug/pprof/
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	h := &hookgate{cmd: cmd, api: api, ops: ops, logPath: logPath, done: make(chan struct{})}
	h.started = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("cannot start %s: %w", bin, err)
	}
	go func() { h.err = cmd.Wait(); close(h.done) }()
	return h, nil
}

// freeAddr returns a loopback address with a port free a moment ago.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// pid is the process id.
func (h *hookgate) pid() int { return h.cmd.Process.Pid }

// exited reports whether the process has ended.
func (h *hookgate) exited() bool {
	select {
	case <-h.done:
		return true
	default:
		return false
	}
}

// exitError describes how the process ended, for a failure message.
func (h *hookgate) exitError() error {
	return fmt.Errorf("hookgate exited early (%v); its log: %s", h.err, h.logPath)
}

// stop sends SIGTERM and waits at most bound for the exit; past it the
// process is killed and stop fails. An exit status other than 0 fails
// too: a graceful stop ends with 0.
func (h *hookgate) stop(bound time.Duration) error {
	if h.exited() {
		return h.exitError()
	}
	_ = h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-h.done:
	case <-time.After(bound):
		h.kill()
		return fmt.Errorf("hookgate did not stop within %v of SIGTERM: killed; its log: %s", bound, h.logPath)
	}
	if h.err != nil {
		return fmt.Errorf("hookgate stopped with %v; its log: %s", h.err, h.logPath)
	}
	return nil
}

// kill ends the process at once, if it still runs, and waits for it.
// It is safe to call more than once.
func (h *hookgate) kill() {
	if h == nil || h.exited() {
		return
	}
	_ = h.cmd.Process.Kill()
	<-h.done
}

// waitReady polls /healthz and then /readyz every 10 ms, at most for
// bound, and returns the time from the process start to the first 200 of
// each.
func (h *hookgate) waitReady(ctx context.Context, bound time.Duration) (health, ready time.Duration, err error) {
	client := &http.Client{Timeout: time.Second}
	ok := func(path string) bool {
		resp, err := client.Get("http://" + h.ops + path)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(bound)
	for {
		if health == 0 && ok("/healthz") {
			health = time.Since(h.started)
		}
		if health != 0 && ok("/readyz") {
			return health, time.Since(h.started), nil
		}
		select {
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		case <-h.done:
			return 0, 0, h.exitError()
		case <-deadline:
			return 0, 0, fmt.Errorf("hookgate not ready within %v (healthy: %v); its log: %s", bound, health != 0, h.logPath)
		case <-tick.C:
		}
	}
}

// rss returns the resident memory of the process, in bytes (VmRSS).
func (h *hookgate) rss() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", h.pid()))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmRSS in /proc/PID/status")
}

// waitLog waits until hookgate's log has a line containing what.
func (h *hookgate) waitLog(ctx context.Context, what string, bound time.Duration) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(bound)
	for {
		if b, err := os.ReadFile(h.logPath); err == nil && strings.Contains(string(b), what) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-h.done:
			return h.exitError()
		case <-deadline:
			return fmt.Errorf("no %s in hookgate's log within %v: %s", what, bound, h.logPath)
		case <-tick.C:
		}
	}
}

// memStatus returns the memory lines of /proc/PID/status: RSS split in
// anonymous, file-backed and shared memory.
func (h *hookgate) memStatus() string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", h.pid()))
	if err != nil {
		return err.Error()
	}
	var out []string
	for line := range strings.SplitSeq(string(b), "\n") {
		if strings.HasPrefix(line, "Rss") || strings.HasPrefix(line, "VmHWM") {
			out = append(out, strings.Join(strings.Fields(line), " "))
		}
	}
	return strings.Join(out, ", ")
}

// saveProfile saves /debug/pprof/<what> of the ops listener in path.
func (h *hookgate) saveProfile(what, path string) error {
	c := &http.Client{Timeout: time.Minute}
	resp, err := c.Get("http://" + h.ops + "/debug/pprof/" + what)
	if err != nil {
		return fmt.Errorf("profile %s: %w", what, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profile %s: %s", what, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// cpuTicks returns the CPU time the process has used, user and system,
// in clock ticks (see procstat.ClockTicks).
func (h *hookgate) cpuTicks() (int64, error) {
	t, err := procstat.ReadPid(h.pid())
	return t.Total(), err
}

// tail returns the last n lines of the file at path, or "".
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// machine describes the host: CPUs usable and their model.
func machine(nproc int) string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	return fmt.Sprintf("%d CPUs, %s", nproc, model)
}

// loadAvg returns the first three fields of /proc/loadavg, or "?".
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// ownCPU is the CPU time (user and system) this process has used.
func ownCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
