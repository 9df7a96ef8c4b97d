package main

import (
	"errors"
	"flag"
	"math"
	"strconv"
	"strings"
)

// byteSize is a flag holding a size in bytes, set as a plain number or
// with a unit: B, kB, MB, GB (powers of 1,000) or KiB, MiB, GiB (powers
// of 1,024), any case: 65536, 64KiB and 64kib are the same.
type byteSize[T int | int64 | uint64] struct{ p *T }

// sizeVar defines a size flag: p holds def until the flag is set.
func sizeVar[T int | int64 | uint64](fs *flag.FlagSet, p *T, name string, def T, usage string) {
	*p = def
	fs.Var(byteSize[T]{p}, name, usage)
}

func (b byteSize[T]) String() string {
	if b.p == nil {
		return "0"
	}
	return formatSize(uint64(*b.p))
}

func (b byteSize[T]) Set(s string) error {
	n, err := parseSize(s)
	if err != nil {
		return err
	}
	if v := T(n); uint64(v) != n || v < 0 {
		return errors.New("size out of range")
	}
	*b.p = T(n)
	return nil
}

var sizeUnits = []struct {
	name string
	mult uint64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"b", 1},
}

// parseSize reads a byte size: digits, then maybe a unit.
func parseSize(s string) (uint64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	mult := uint64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(t, u.name) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.name)), u.mult
			break
		}
	}
	n, err := strconv.ParseUint(t, 10, 64)
	if err != nil {
		return 0, errors.New("want a number of bytes, maybe with a unit: B, kB, MB, GB, KiB, MiB, GiB")
	}
	if n > math.MaxUint64/mult {
		return 0, errors.New("size out of range")
	}
	return n * mult, nil
}

// formatSize writes n with the largest binary unit that divides it.
func formatSize(n uint64) string {
	for _, u := range []struct {
		name string
		mult uint64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.mult && n%u.mult == 0 {
			return strconv.FormatUint(n/u.mult, 10) + u.name
		}
	}
	return strconv.FormatUint(n, 10)
}
