package main

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestParseSize: plain numbers and every unit, any case and spacing;
// nonsense, negative and overflowing sizes are refused.
func TestParseSize(t *testing.T) {
	for in, want := range map[string]uint64{
		"65536": 65536, "64KiB": 64 << 10, "64kib": 64 << 10, " 16 MiB ": 16 << 20, "1GiB": 1 << 30,
		"64kB": 64000, "2MB": 2e6, "3gb": 3e9, "12B": 12, "0": 0,
	} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "KiB", "-1", "1.5MiB", "64 KiBs", "1TiB", "99999999999999999999GiB", "18446744073709551615KiB"} {
		if n, err := parseSize(bad); err == nil {
			t.Errorf("parseSize(%q) = %d; want an error", bad, n)
		}
	}
	var small int
	if err := (byteSize[int]{&small}).Set("16EiB"); err == nil {
		t.Error("an int flag took 16EiB")
	}
	if s := (byteSize[int]{&small}).String(); s != "0" {
		t.Errorf("String of 0 = %q", s)
	}
}

// FuzzParseSize: whatever it is given, parseSize never panics, and what
// it reads formats and reads back to the same size.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"64KiB", "1GiB", "12", "3MB", "", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseSize(s)
		if err != nil {
			return
		}
		back, err := parseSize(formatSize(n))
		if err != nil || back != n {
			t.Fatalf("%q = %d, formatted %q, read back %d, %v", s, n, formatSize(n), back, err)
		}
		if strings.TrimSpace(s) == "" {
			t.Fatalf("an empty size was read as %d", n)
		}
	})
}

// FuzzApplyConfig: whatever a config file holds, applyConfig returns an
// error or sets flags; it never panics, and never sets a flag to a value
// the flag refused.
func FuzzApplyConfig(f *testing.F) {
	for _, s := range []string{"max-header: 32KiB\n", "upstream: [a:1, b:2]\n", "x: 1\n", "max-header:\n", "- 1\n- 2\n", "{", "timeout: 1s\nmax-header: 1KiB\n"} {
		f.Add(s)
	}
	path := filepath.Join(f.TempDir(), "c.yaml")
	f.Fuzz(func(t *testing.T, body string) {
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		header := 16 << 10
		fs.Var(byteSize[int]{&header}, "max-header", "")
		upstream := fs.String("upstream", "", "")
		timeout := fs.Duration("timeout", 0, "")
		if err := applyConfig(fs, path); err != nil {
			return
		}
		if header < 0 || *timeout < 0 && !strings.Contains(body, "-") {
			t.Fatalf("%q set max-header %d, timeout %s", body, header, *timeout)
		}
		_ = upstream
	})
}

// TestSettingsCountAsSet: a flag set by the config file or the
// environment counts as set, as one on the command line does: an
// -api-version given any of these ways stays fixed, not learned.
func TestSettingsCountAsSet(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte("api-version: 2.0.0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HOOKGATE_SERIAL", "ops")
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.String("api-version", "1.9.3", "")
	fs.String("serial", "hookgate", "")
	fs.String("log-level", "info", "")
	if err := applyConfig(fs, path); err != nil {
		t.Fatal(err)
	}
	if err := applyEnv(fs); err != nil {
		t.Fatal(err)
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["api-version"] || !set["serial"] || set["log-level"] {
		t.Fatalf("flags counted as set: %v; want api-version (file) and serial (environment)", set)
	}
}
