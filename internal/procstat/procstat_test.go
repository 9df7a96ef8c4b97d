package procstat

import (
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParsePidStat(t *testing.T) {
	f := func(file string, want CPUTime) {
		t.Helper()
		got, err := ParsePid(readTestdata(t, file))
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if got != want {
			t.Fatalf("%s: got %+v; want %+v", file, got, want)
		}
	}
	// wrk, 1.5 s into a run pinned to one core: mostly system time.
	f("pid-stat-wrk.txt", CPUTime{User: 14, System: 113})
	f("pid-stat-upstream.txt", CPUTime{User: 32, System: 109})
	// A command name with spaces and parentheses: "we) ird (x".
	f("pid-stat-paren.txt", CPUTime{})
}

func TestParsePidStatErrors(t *testing.T) {
	for _, in := range []string{
		"",
		"12 (wrk S 1 2 3",                 // no closing parenthesis
		"12 (wrk) S 1 2 3 4 5 6 7 8 9 10", // too short
		"12 (wrk) S 1 2 3 4 5 6 7 8 9 10 x 113",
		"12 (wrk) S 1 2 3 4 5 6 7 8 9 10 -4 113",
	} {
		if got, err := ParsePid([]byte(in)); err == nil {
			t.Errorf("ParsePid(%q) = %+v; want an error", in, got)
		}
	}
}

func TestCPUTime(t *testing.T) {
	a, b := CPUTime{User: 14, System: 113}, CPUTime{User: 32, System: 109}
	if got := b.Sub(a); got != (CPUTime{User: 18, System: -4}) {
		t.Fatalf("sub: got %+v", got)
	}
	if got := a.Total(); got != 127 {
		t.Fatalf("total: got %d; want 127", got)
	}
	if got := TicksDuration(127, 100); got != 1270*time.Millisecond {
		t.Fatalf("TicksDuration: got %s; want 1.27s", got)
	}
}

func TestParseCPUStat(t *testing.T) {
	a, err := ParseCPU(readTestdata(t, "proc-stat-1.txt"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := ParseCPU(readTestdata(t, "proc-stat-2.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != 2 {
		t.Fatalf("got %d CPUs; want 2 (the aggregate line is not one)", len(a))
	}
	if a[0] != (CoreTime{Total: 6358814, Idle: 2370226}) {
		t.Fatalf("cpu0: got %+v", a[0])
	}
	if a[1] != (CoreTime{Total: 6355317, Idle: 2254443}) {
		t.Fatalf("cpu1: got %+v", a[1])
	}
	// cpu1 over the 4.57 s between the samples: 270 of 457 ticks idle.
	if got, want := BusyPercent(a[1], b[1]), 100*187.0/457; math.Abs(got-want) > 1e-9 {
		t.Fatalf("busy: got %v; want %v", got, want)
	}
	if got := BusyPercent(a[1], a[1]); got != 0 {
		t.Fatalf("busy over no time: got %v; want 0", got)
	}
}

func TestParseCPUStatErrors(t *testing.T) {
	for _, in := range []string{
		"",
		"cpu  1 2 3 4 5\nintr 1 2\n", // no per-CPU line
		"cpux 1 2 3 4 5\n",
		"cpu0 1 2 3\n",
		"cpu0 1 2 3 -4 5\n",
		"cpu0 1 2 3 four 5\n",
	} {
		if got, err := ParseCPU([]byte(in)); err == nil {
			t.Errorf("ParseCPU(%q) = %+v; want an error", in, got)
		}
	}
}

// FuzzParseProcStat feeds the parsers of /proc/<pid>/stat and /proc/stat
// anything: they must not panic, and what they accept is never negative.
func FuzzParseProcStat(f *testing.F) {
	for _, name := range []string{"pid-stat-wrk.txt", "pid-stat-upstream.txt", "pid-stat-paren.txt", "proc-stat-1.txt"} {
		f.Add(readTestdata(f, name))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if c, err := ParsePid(b); err == nil && (c.User < 0 || c.System < 0) {
			t.Fatalf("negative CPU time %+v", c)
		}
		if cores, err := ParseCPU(b); err == nil {
			for n, c := range cores {
				if n < 0 || c.Total < c.Idle || c.Idle < 0 {
					t.Fatalf("cpu%d: %+v", n, c)
				}
			}
		}
	})
}
