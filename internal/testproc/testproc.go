// Package testproc runs a test as a child process that crashes: the test
// binary again, one test of it, with an environment that tells the test
// it is the child.
package testproc

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// RunKilled runs the test binary's test name (a -test.run pattern) as a
// child, with env added to the environment, and fails t unless the child
// ends killed by SIGKILL (by itself) within a minute. It returns the
// child's output.
//
// Real time: the child is a process of its own, waited for at most a
// minute.
func RunKilled(t *testing.T, name string, env ...string) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+name+"$", "-test.v")
	cmd.Env = append(os.Environ(), env...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case <-exited:
	case <-time.After(time.Minute):
		cmd.Process.Kill()
		<-exited
		t.Fatalf("the child did not crash within a minute:\n%s", out.String())
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the child ended with %v; want killed by SIGKILL:\n%s", cmd.ProcessState, out.String())
	}
	return out.String()
}
