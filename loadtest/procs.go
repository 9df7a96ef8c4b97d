package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/hookgate/hookgate/internal/procstat"
)

// server is a process started by a fleet: a demo server, hookgate, nginx
// or haproxy.
type server struct {
	name string
	cmd  *exec.Cmd
	log  string
	// done is closed when the process has exited.
	done chan struct{}
}

// pid returns the server's process id. Under taskset it is the server's
// own: taskset execs it.
func (s *server) pid() int { return s.cmd.Process.Pid }

// alive reports whether the process has not exited.
func (s *server) alive() bool {
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// fleet starts the servers of a scenario on one CPU and stops them all.
// Not safe for concurrent use; stop must be called before the fleet is
// dropped (the runner defers it).
type fleet struct {
	// cpu is the CPU every server is pinned to, -1 for none.
	cpu int
	// logs is the directory of the servers' logs, kept with the results.
	logs    string
	servers []*server
	// grace is how long stop waits after SIGTERM; 0 means 5 s.
	grace time.Duration
	// waiters counts the goroutines that wait for a server to exit.
	waiters sync.WaitGroup
}

// procAttr makes a child the leader of a process group of its own, so
// that Ctrl-C on the terminal reaches only the runner, which then stops
// everything in order; and kills the child if the runner dies first.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// pinned returns the command line that runs args on cpu (-1: anywhere).
func pinned(cpu int, args []string) []string {
	if cpu < 0 {
		return args
	}
	return append([]string{"taskset", "-c", strconv.Itoa(cpu)}, args...)
}

// start starts args as the server name with GOMAXPROCS=1 and env added
// to the environment, its output to a log of its own.
func (f *fleet) start(name string, env []string, args ...string) (*server, error) {
	path := filepath.Join(f.logs, name+".log")
	out, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cannot create the log of %s: %w", name, err)
	}
	defer out.Close()
	line := pinned(f.cpu, args)
	cmd := exec.Command(line[0], line[1:]...)
	cmd.Env = append(append(os.Environ(), "GOMAXPROCS=1"), env...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("cannot start %s: %w", name, err)
	}
	s := &server{name: name, cmd: cmd, log: path, done: make(chan struct{})}
	f.servers = append(f.servers, s)
	f.waiters.Go(func() {
		cmd.Wait()
		close(s.done)
	})
	return s, nil
}

// stop stops every server started so far: SIGTERM to its process group,
// then SIGKILL after the grace time. It returns when all have exited.
func (f *fleet) stop() {
	for _, s := range f.servers {
		if s.alive() {
			syscall.Kill(-s.pid(), syscall.SIGTERM)
		}
	}
	grace := f.grace
	if grace == 0 {
		grace = 5 * time.Second
	}
	deadline := time.After(grace)
	for _, s := range f.servers {
		select {
		case <-s.done:
		case <-deadline:
			// Past the grace time: kill every one left at once.
			for _, s := range f.servers {
				if s.alive() {
					syscall.Kill(-s.pid(), syscall.SIGKILL)
				}
			}
			<-s.done
		}
	}
	f.waiters.Wait()
	f.servers = nil
}

// check returns an error, with the end of its log, if a server has
// exited.
func (f *fleet) check() error {
	for _, s := range f.servers {
		if !s.alive() {
			return fmt.Errorf("%s exited (%v); the end of its log:\n%s", s.name, s.cmd.ProcessState, tail(s.log, 20))
		}
	}
	return nil
}

// cpuTimes returns the CPU time of every server so far, by server.
func (f *fleet) cpuTimes() (map[*server]procstat.CPUTime, error) {
	m := make(map[*server]procstat.CPUTime, len(f.servers))
	for _, s := range f.servers {
		t, err := procstat.ReadPid(s.pid())
		if err != nil {
			return nil, errors.Join(err, f.check())
		}
		m[s] = t
	}
	return m, nil
}

// usage is the servers' CPU times and every core's counters, read one
// after the other.
type usage struct {
	procs map[*server]procstat.CPUTime
	cores map[int]procstat.CoreTime
}

// usage reads the servers' CPU times (/proc/<pid>/stat), then the
// cores' counters (/proc/stat).
func (f *fleet) usage() (usage, error) {
	procs, err := f.cpuTimes()
	if err != nil {
		return usage{}, err
	}
	cores, err := procstat.ReadCPU()
	if err != nil {
		return usage{}, err
	}
	return usage{procs, cores}, nil
}

// portFree returns an error if something already listens on addr: the
// runner would measure it instead of its own server.
func portFree(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return nil
	}
	c.Close()
	return fmt.Errorf("something already listens on %s (another load test?)", addr)
}

// waitPort waits up to 10 s for s to listen on addr.
func waitPort(ctx context.Context, addr string, s *server) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if !s.alive() || time.Now().After(deadline) {
			return fmt.Errorf("%s does not listen on %s; the end of its log:\n%s", s.name, addr, tail(s.log, 20))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	return string(bytes.Join(lines[max(0, len(lines)-n):], []byte("\n")))
}

// childRun is what a generator or other short-lived child used.
type childRun struct {
	// Wall is from start to exit.
	Wall time.Duration
	// CPU is the child's own user and system time, from wait4's rusage:
	// the counters /proc/<pid>/stat shows, read when the process ends
	// (its /proc entry is gone by the time it has been waited for).
	User, System time.Duration
}

// percent returns the child's CPU time as a share of one core over its
// run, in percent.
func (c childRun) percent() float64 {
	if c.Wall <= 0 {
		return 0
	}
	return 100 * float64(c.User+c.System) / float64(c.Wall)
}

// runChild runs args on cpu (-1: anywhere) with env added, its output
// (standard output and error) to the file out, for at most timeout; it
// is stopped with SIGTERM, then SIGKILL, when ctx is done. A child that
// fails returns an error with the end of its output.
func runChild(ctx context.Context, cpu int, env []string, timeout time.Duration, out string, args ...string) (childRun, error) {
	f, err := os.Create(out)
	if err != nil {
		return childRun{}, err
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	line := pinned(cpu, args)
	cmd := exec.CommandContext(ctx, line[0], line[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = procAttr()
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err = cmd.Run()
	run := childRun{Wall: time.Since(start)}
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			run.User = time.Duration(ru.Utime.Nano())
			run.System = time.Duration(ru.Stime.Nano())
		}
	}
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			err = fmt.Errorf("still running after %s", timeout)
		}
		return run, fmt.Errorf("%s failed (%w); the end of its output (%s):\n%s", args[0], err, out, tail(out, 20))
	}
	return run, nil
}
