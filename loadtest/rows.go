package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"
)

// loadRow is one run of a generator against one target: reads (GET) and
// changes (POST events.create). CPU figures are per request the
// generator counted; percentages are of one core over the run.
type loadRow struct {
	Scenario  string `tsv:"scenario"`      // read or change
	Upstream  string `tsv:"upstream"`      // trivial or work (1 ms per request)
	Loop      string `tsv:"loop"`          // closed (wrk) or open (vegeta at a fixed rate)
	Offered   int    `tsv:"offered_per_s"` // the open loop's rate, requests per second; 0 closed
	Target    string `tsv:"target"`        // direct, hookgate, hookgate-sync, hookgate-async, nginx, haproxy
	Rep       int    `tsv:"rep"`           // repetition, from 1
	Generator string `tsv:"generator"`     // wrk or vegeta
	Requests  int64  `tsv:"requests"`
	// Rate is requests per second; in an open loop the rate they were
	// sent at.
	Rate   float64 `tsv:"req_per_s"`
	P50Ms  float64 `tsv:"p50_ms"`
	P99Ms  float64 `tsv:"p99_ms"`
	MaxMs  float64 `tsv:"max_ms"`
	Errors int64   `tsv:"errors"`
	// UserUs and SysUs are the target process's own user and system CPU
	// time per request (µs): the upstream's for direct, the proxy's
	// otherwise.
	UserUs float64 `tsv:"user_us_per_req"`
	SysUs  float64 `tsv:"sys_us_per_req"`
	// UpstreamUs is the upstream's CPU time per request behind a proxy
	// (µs); 0 for direct.
	UpstreamUs float64 `tsv:"upstream_us_per_req"`
	// ServerPct is the target process's CPU, ServersPct that of every
	// server process of the run (all on the server core), CoreBusyPct
	// how busy the server core was from /proc/stat (every process on
	// the machine), GenPct the generator's own CPU (it has one core).
	ServerPct   float64 `tsv:"server_cpu_pct"`
	ServersPct  float64 `tsv:"servers_cpu_pct"`
	CoreBusyPct float64 `tsv:"server_core_busy_pct"`
	GenPct      float64 `tsv:"generator_cpu_pct"`
	// Limit says what held the rate back: see limitOf.
	Limit string `tsv:"limit"`
	// Raw names the generator's raw output, in the results directory.
	Raw string `tsv:"raw"`
}

// deliveryRow is one delivery run: one webhook per user, one change per
// user, next to bin/raw-post posting as many notifications.
type deliveryRow struct {
	Webhooks  int     `tsv:"webhooks"`
	Rep       int     `tsv:"rep"`
	Generator string  `tsv:"generator"` // vegeta (k6 in older runs)
	Delivered int64   `tsv:"delivered"`
	PerS      float64 `tsv:"deliveries_per_s"` // at the receiver, first to last arrival
	RawPerS   float64 `tsv:"raw_per_s"`        // bin/raw-post on the same core
	// CPUUs is hookgate's CPU time per change and its delivery (µs),
	// from the first change to the last notification; RawCPUUs
	// raw-post's per POST; CreateCPUUs hookgate's per webhook created,
	// before.
	CPUUs       float64 `tsv:"cpu_us_per_delivery"`
	RawCPUUs    float64 `tsv:"raw_cpu_us_per_post"`
	CreateCPUUs float64 `tsv:"create_cpu_us_per_webhook"`
	// ServerPct is hookgate's CPU, ServersPct that of every server of
	// the run, CoreBusyPct the server core's busy time, each as a share
	// of one core from the first change to the last notification;
	// RawBusyPct is the server core's while raw-post ran; GenPct the
	// generator's own CPU over its run.
	ServerPct   float64 `tsv:"server_cpu_pct"`
	ServersPct  float64 `tsv:"servers_cpu_pct"`
	CoreBusyPct float64 `tsv:"server_core_busy_pct"`
	RawBusyPct  float64 `tsv:"raw_server_core_busy_pct"`
	GenPct      float64 `tsv:"generator_cpu_pct"`
	// Limit says what held the deliveries back: see heldBy.
	Limit string `tsv:"limit"`
	Raw   string `tsv:"raw"`
}

// burstRow is one burst run: idle webhooks, one per user, then one
// change per user as fast as the generator gets them answered, and the
// latency from each change's answer to its notification's arrival.
type burstRow struct {
	Webhooks int `tsv:"webhooks"`
	Rep      int `tsv:"rep"`
	// Changes is how many changes were answered and reported to the
	// receiver, Notified how many of them were then notified, Early how
	// many of those notifications arrived before the client had read
	// the change's answer (a negative latency).
	Changes     int     `tsv:"changes"`
	Notified    int     `tsv:"notified"`
	Early       int     `tsv:"early"`
	ChangesPerS float64 `tsv:"changes_per_s"` // the burst's rate, at the generator
	P50Ms       float64 `tsv:"p50_ms"`
	P95Ms       float64 `tsv:"p95_ms"`
	P99Ms       float64 `tsv:"p99_ms"`
	MaxMs       float64 `tsv:"max_ms"`
	// CPUUs is hookgate's CPU time per change and its delivery (µs).
	CPUUs float64 `tsv:"cpu_us_per_change"`
	// ServersPct is every server's CPU, CoreBusyPct the server core's
	// busy time, as shares of one core from the burst's start to the
	// last notification's report.
	ServersPct  float64 `tsv:"servers_cpu_pct"`
	CoreBusyPct float64 `tsv:"server_core_busy_pct"`
	// GenPct is the generator's CPU over the burst, as a share of its
	// core.
	GenPct float64 `tsv:"generator_cpu_pct"`
	Raw    string  `tsv:"raw"`
}

// latencyRow is one change to notification latency run.
type latencyRow struct {
	Kind        string  `tsv:"kind"` // healthy or isolation
	Rep         int     `tsv:"rep"`
	Changes     int     `tsv:"changes"`
	Notified    int     `tsv:"notified"`
	P50Ms       float64 `tsv:"p50_ms"`
	P95Ms       float64 `tsv:"p95_ms"`
	P99Ms       float64 `tsv:"p99_ms"`
	MaxMs       float64 `tsv:"max_ms"`
	CoreBusyPct float64 `tsv:"server_core_busy_pct"`
	Raw         string  `tsv:"raw"`
}

// coalesceRow is one coalescing run: many changes on one user with a
// few webhooks and a window.
type coalesceRow struct {
	Rep         int     `tsv:"rep"`
	Changes     int64   `tsv:"changes"`
	ChangesPerS float64 `tsv:"changes_per_s"`
	Webhooks    int     `tsv:"webhooks"`
	MinPosts    int64   `tsv:"min_posts"`
	MaxPosts    int64   `tsv:"max_posts"`
	// PostsPerHookPerS is the highest rate any webhook saw:
	// notifications after the first over its first-to-last span.
	PostsPerHookPerS float64 `tsv:"posts_per_webhook_per_s"`
	MinGapMs         float64 `tsv:"min_gap_ms"`
	// LastAfterMs is the least time, over the webhooks, from the last
	// change's answer to that webhook's last notification.
	LastAfterMs float64 `tsv:"last_after_ms"`
	Missing     int     `tsv:"missing"`
	CPUUs       float64 `tsv:"cpu_us_per_change"`
	CoreBusyPct float64 `tsv:"server_core_busy_pct"`
	Raw         string  `tsv:"raw"`
}

// tsvColumns returns the struct fields of a row type with their column
// names. Row types hold only string, int, int64 and float64 fields,
// each tagged.
func tsvColumns(t reflect.Type) []string {
	cols := make([]string, t.NumField())
	for i := range cols {
		cols[i] = t.Field(i).Tag.Get("tsv")
		if cols[i] == "" {
			panic("BUG: untagged field " + t.Name() + "." + t.Field(i).Name)
		}
	}
	return cols
}

// appendTSVRow appends row (a row struct) as one tab-separated line.
func appendTSVRow(dst []byte, row any) []byte {
	v := reflect.ValueOf(row)
	for i := range v.NumField() {
		if i > 0 {
			dst = append(dst, '\t')
		}
		switch f := v.Field(i); f.Kind() {
		case reflect.String:
			// Values are names the runner chose; a tab or newline
			// would break the file.
			dst = append(dst, strings.NewReplacer("\t", " ", "\n", " ").Replace(f.String())...)
		case reflect.Int, reflect.Int64:
			dst = strconv.AppendInt(dst, f.Int(), 10)
		case reflect.Float64:
			dst = strconv.AppendFloat(dst, f.Float(), 'f', 3, 64)
		default:
			panic("BUG: row field of kind " + f.Kind().String())
		}
	}
	return append(dst, '\n')
}

// tsvFile appends rows of one type to a file as they are measured, so a
// run that stops halfway keeps what it had. Not safe for concurrent use.
type tsvFile struct {
	path   string
	header bool
}

// add appends row, writing the header line first if the file is new.
func (f *tsvFile) add(row any) error {
	var b []byte
	if !f.header {
		b = append(b, strings.Join(tsvColumns(reflect.TypeOf(row)), "\t")+"\n"...)
	}
	b = appendTSVRow(b, row)
	w, err := os.OpenFile(f.path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("cannot write a result row: %w", err)
	}
	if _, err := w.Write(b); err != nil {
		w.Close()
		return fmt.Errorf("cannot write a result row to %q: %w", f.path, err)
	}
	f.header = true
	return w.Close()
}

// readTSV reads rows of type T from a file tsvFile wrote: columns are
// matched by the header's names, so a column added later reads as zero
// from an older file.
func readTSV[T any](r io.Reader) ([]T, error) {
	t := reflect.TypeFor[T]()
	cols := tsvColumns(t)
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	var index []int // field of each column of the file, -1 if none
	var rows []T
	for line := 1; sc.Scan(); line++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		f := strings.Split(sc.Text(), "\t")
		if index == nil {
			index = make([]int, len(f))
			for i, name := range f {
				index[i] = -1
				for j, c := range cols {
					if c == name {
						index[i] = j
					}
				}
			}
			continue
		}
		if len(f) != len(index) {
			return nil, fmt.Errorf("line %d has %d columns; the header has %d", line, len(f), len(index))
		}
		var row T
		v := reflect.ValueOf(&row).Elem()
		for i, s := range f {
			if index[i] < 0 {
				continue
			}
			fv := v.Field(index[i])
			var err error
			switch fv.Kind() {
			case reflect.String:
				fv.SetString(s)
			case reflect.Int, reflect.Int64:
				var n int64
				n, err = strconv.ParseInt(s, 10, 64)
				fv.SetInt(n)
			case reflect.Float64:
				var x float64
				x, err = strconv.ParseFloat(s, 64)
				fv.SetFloat(x)
			}
			if err != nil {
				return nil, fmt.Errorf("line %d, column %s: %w", line, cols[index[i]], err)
			}
		}
		rows = append(rows, row)
	}
	return rows, sc.Err()
}

// readTSVFile reads rows of type T from path; a missing file has none.
func readTSVFile[T any](path string) ([]T, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rows, err := readTSV[T](f)
	if err != nil {
		return nil, fmt.Errorf("cannot read %q: %w", path, err)
	}
	return rows, nil
}
