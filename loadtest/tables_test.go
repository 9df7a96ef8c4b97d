package main

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestMedianSpread(t *testing.T) {
	f := func(xs []float64, med, spr float64) {
		t.Helper()
		if got := median(xs); got != med && !(math.IsNaN(got) && math.IsNaN(med)) {
			t.Fatalf("median(%v) = %v; want %v", xs, got, med)
		}
		if got := spread(xs); math.Abs(got-spr) > 1e-9 {
			t.Fatalf("spread(%v) = %v; want %v", xs, got, spr)
		}
	}
	f(nil, math.NaN(), 0)
	f([]float64{7}, 7, 0)
	f([]float64{30, 10, 20}, 20, 100)
	f([]float64{4, 1, 3, 2}, 2.5, 120)
	f([]float64{0, 0}, 0, 0)
}

func TestLimitOf(t *testing.T) {
	f := func(r loadRow, want string) {
		t.Helper()
		if got := limitOf(r); got != want {
			t.Fatalf("limitOf(%+v) = %q; want %q", r, got, want)
		}
	}
	f(loadRow{Loop: "closed", GenPct: 91.4, ServersPct: 93.8}, "both")
	f(loadRow{Loop: "closed", GenPct: 95, ServersPct: 60, CoreBusyPct: 70}, "generator")
	f(loadRow{Loop: "closed", GenPct: 22.7, ServersPct: 84.3, CoreBusyPct: 95}, "server")
	f(loadRow{Loop: "closed", GenPct: 22.7, ServersPct: 92}, "server")
	f(loadRow{Loop: "closed", GenPct: 24.5, ServersPct: 47, CoreBusyPct: 60}, "concurrency")
	// An open loop that sent its rate was held by nothing, busy or not.
	f(loadRow{Loop: "open", Offered: 2000, Rate: 1999.2, GenPct: 95, CoreBusyPct: 95}, "rate")
	f(loadRow{Loop: "open", Offered: 2000, Rate: 1500, GenPct: 95}, "generator")
}

func TestTSVRoundTrip(t *testing.T) {
	rows := []loadRow{
		{Scenario: "read", Upstream: "trivial", Loop: "open", Offered: 2000, Target: "hookgate", Rep: 2, Generator: "vegeta",
			Requests: 8000, Rate: 2000.125, P50Ms: 0.524, P99Ms: 6.02, MaxMs: 15.87, Errors: 3, UserUs: 47.5, SysUs: 87.5,
			UpstreamUs: 67.5, ServerPct: 25.2, ServersPct: 39.1, CoreBusyPct: 90.6, GenPct: 39.2, Limit: "rate", Raw: "006-x.json"},
		{Scenario: "change", Target: "tab\there", P99Ms: math.NaN()},
	}
	path := filepath.Join(t.TempDir(), "loads.tsv")
	f := &tsvFile{path: path}
	for _, r := range rows {
		if err := f.add(r); err != nil {
			t.Fatal(err)
		}
	}
	got, err := readTSVFile[loadRow](path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !reflect.DeepEqual(got[0], rows[0]) {
		t.Fatalf("got %+v; want %+v", got, rows[:1])
	}
	if got[1].Target != "tab here" || !math.IsNaN(got[1].P99Ms) {
		t.Fatalf("got %+v", got[1])
	}
	// A file with a column this version does not know, and without one
	// it does, still reads.
	b, _ := os.ReadFile(path)
	old := strings.Replace(strings.Replace(string(b), "\tlimit\t", "\tgone\t", 1), "scenario\t", "scenario_old\t", 1)
	got, err = readTSV[loadRow](strings.NewReader(old))
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Limit != "" || got[0].Scenario != "" || got[0].Rate != 2000.125 {
		t.Fatalf("got %+v", got[0])
	}
	if _, err := readTSV[loadRow](strings.NewReader("scenario\trep\nread\tone\n")); err == nil {
		t.Fatal("a rep that is not a number: want an error")
	}
	if _, err := readTSV[loadRow](strings.NewReader("scenario\trep\nread\n")); err == nil {
		t.Fatal("a short line: want an error")
	}
	if rows, err := readTSVFile[loadRow](filepath.Join(t.TempDir(), "none.tsv")); err != nil || rows != nil {
		t.Fatalf("a missing file: got %v, %v; want no rows", rows, err)
	}
}

// line returns the line of out that starts with the fields prefix
// (separated by any spaces), or fails.
func line(t *testing.T, out string, prefix ...string) []string {
	t.Helper()
	for l := range strings.Lines(out) {
		f := strings.Fields(l)
		if len(f) >= len(prefix) && reflect.DeepEqual(f[:len(prefix)], prefix) {
			return f
		}
	}
	t.Fatalf("no line starting %q in:\n%s", prefix, out)
	return nil
}

// TestTablesOfARun prints the tables of the rows of a quick run kept in
// testdata/results and checks figures in them.
func TestTablesOfARun(t *testing.T) {
	res, err := readResults(filepath.Join("testdata", "results"))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Loads) != 24 || len(res.Deliveries) != 1 || len(res.Latency) != 2 || len(res.Coalescing) != 1 {
		t.Fatalf("got %d, %d, %d, %d rows", len(res.Loads), len(res.Deliveries), len(res.Latency), len(res.Coalescing))
	}
	var b bytes.Buffer
	printTables(&b, res)
	out := b.String()
	f := func(got []string, i int, want string) {
		t.Helper()
		if got[i] != want {
			t.Fatalf("%q: field %d is %q; want %q", got, i, got[i], want)
		}
	}
	// scenario upstream loop target generator req/s ±% p50 p99 max µs/req user sys +up server% gen% headroom% other% limit errors reps
	hg := line(t, out, "read", "trivial", "closed", "hookgate")
	f(hg, 5, "8744")
	f(hg, 10, "70.2") // 26.606 user + 43.589 system
	f(hg, 11, "26.6")
	f(hg, 12, "43.6")
	f(hg, 15, "22.7")
	f(hg, 16, "77.3") // headroom: 100 - 22.7
	f(hg, 18, "server")
	direct := line(t, out, "read", "trivial", "closed", "direct")
	f(direct, 18, "generator")
	open := line(t, out, "read", "trivial", "open@2000", "hookgate")
	f(open, 4, "vegeta")
	f(open, 8, "6.020")
	// Reads before changes, direct first, then hookgate, then the
	// baselines.
	if i, j := strings.Index(out, "change   trivial  closed     direct"), strings.Index(out, "read     work     open@2000  haproxy"); i < j {
		t.Fatal("changes before reads")
	}

	// hookgate against nginx: 8744.37 / 9232.15 req/s, 70.195 / 45.664 µs.
	c := line(t, out, "read", "trivial", "closed:", "req/s")
	f(c, 4, "8744.4")
	f(c, 5, "nginx")
	f(c, 6, "9232.1")
	f(c, 7, "0.95")
	f(c, 8, ">=")
	f(c, 10, "no")
	c = line(t, out, "read", "trivial", "closed:", "CPU", "µs/req")
	f(c, 5, "70.2")
	f(c, 8, "1.54")
	c = line(t, out, "change", "sync", "closed:", "req/s")
	f(c, 7, "0.32") // 5148.3 / 15934.6
	c = line(t, out, "change", "async", "open@2000:", "p99", "ms", "5.5", "-")
	f(c, 8, "<=")
	f(c, 9, "5.00")
	f(c, 10, "no")

	// A run from before the generator and the limit were recorded.
	d := line(t, out, "1000", "k6", "1000")
	f(d, 3, "1908")
	f(d, 5, "10873")
	f(d, 6, "0.18")
	f(d, 7, "280.0")
	f(d, 8, "57.8")
	f(d, 9, "460.0")
	f(d, 11, "-") // other %: not recorded
	f(d, 12, "78.0")
	f(d, 14, "-")
	c = line(t, out, "deliveries", "1000:", "deliveries/s")
	f(c, 6, "0.18")
	f(c, 9, "no")

	l := line(t, out, "isolation")
	f(l, 3, "0.295")
	f(l, 5, "2.699")
	co := line(t, out, "1", "user")
	f(co, 2, "10016")
	f(co, 6, "6-6")
	f(co, 8, "1006.5")
	f(co, 10, "0")
}

// TestTablesOverRepetitions checks the medians, spreads and mixed limits
// of three repetitions.
func TestTablesOverRepetitions(t *testing.T) {
	var rows []loadRow
	for i, rate := range []float64{9000, 10000, 12000} {
		base := loadRow{Scenario: "read", Upstream: "trivial", Loop: "closed", Rep: i + 1, Generator: "wrk", Rate: rate,
			UserUs: 10 + float64(i), SysUs: 20, GenPct: 50, Limit: "server"}
		hg := base
		hg.Target, hg.Rate, hg.UserUs, hg.Errors = "hookgate", rate*0.9, 30, int64(i)
		if i == 2 {
			hg.Limit = "generator"
		}
		ng := base
		ng.Target = "nginx"
		rows = append(rows, hg, ng)
	}
	var b bytes.Buffer
	printTables(&b, results{Loads: rows})
	out := b.String()
	hg := line(t, out, "read", "trivial", "closed", "hookgate")
	if hg[5] != "9000" || hg[6] != "30.0" || hg[10] != "50.0" || hg[18] != "server/generator" || hg[19] != "3" || hg[20] != "3" {
		t.Fatalf("hookgate row: %q", hg)
	}
	ng := line(t, out, "read", "trivial", "closed", "nginx")
	if ng[10] != "31.0" || ng[11] != "11.0" {
		t.Fatalf("nginx row: %q", ng)
	}
	c := line(t, out, "read", "trivial", "closed:", "CPU", "µs/req")
	if c[8] != "1.61" || c[12] != "server/generator" || c[14] != "server" { // 50 / 31
		t.Fatalf("comparison: %q", c)
	}
	c = line(t, out, "read", "trivial", "closed:", "req/s")
	if c[7] != "0.90" || c[10] != "no" {
		t.Fatalf("comparison: %q", c)
	}
}

func TestComparisonMet(t *testing.T) {
	f := func(c comparison, want string) {
		t.Helper()
		if got := c.met(); got != want {
			t.Fatalf("%+v: met %q; want %q", c, got, want)
		}
	}
	f(comparison{Hookgate: 35, Base: "nginx", BaseValue: 25, Target: changeCPU}, "yes") // 1.4
	f(comparison{Hookgate: 36, Base: "nginx", BaseValue: 25, Target: changeCPU}, "no")
	f(comparison{Hookgate: 8000, Base: "nginx", BaseValue: 10000, Target: changeRate}, "yes")
	f(comparison{Hookgate: 7999, Base: "nginx", BaseValue: 10000, Target: changeRate}, "no")
	f(comparison{Hookgate: 4.9, Target: asyncP99Ms}, "yes")
	f(comparison{Hookgate: 4.9, Base: "nginx", BaseValue: 0, Target: atMostBaseline}, "?")
	f(comparison{Hookgate: 4.9}, "")
}

func TestHeldBy(t *testing.T) {
	for _, c := range []struct {
		gen, servers, core float64
		want               string
	}{
		{38.3, 63.5, 80.4, "concurrency"},
		{95, 63.5, 80.4, "generator"},
		{38.3, 91, 80.4, "server"},
		{38.3, 63.5, 100, "server"},
		{90, 90, 0, "both"},
	} {
		if got := heldBy(c.gen, c.servers, c.core); got != c.want {
			t.Errorf("heldBy(%v, %v, %v) = %q; want %q", c.gen, c.servers, c.core, got, c.want)
		}
	}
}

// TestDeliveriesAndBurstTables checks the deliveries and burst tables
// and their comparisons over three repetitions: medians, the minimum
// counts, the limits of both sides, the burst's p99 target.
func TestDeliveriesAndBurstTables(t *testing.T) {
	var res results
	for i, perS := range []float64{2700, 3000, 2000} {
		d := deliveryRow{Webhooks: 1000, Rep: i + 1, Generator: "vegeta", Delivered: 1000, PerS: perS, RawPerS: 12000 + float64(i)*1000,
			CPUUs: 200 + float64(i)*10, RawCPUUs: 50, CreateCPUUs: 330, ServerPct: 42, ServersPct: 63, CoreBusyPct: 80,
			RawBusyPct: 100, GenPct: 38 + float64(i), Limit: "concurrency"}
		if i == 2 {
			d.Delivered, d.Limit, d.RawBusyPct = 999, "server", 85
		}
		res.Deliveries = append(res.Deliveries, d)
		res.Burst = append(res.Burst, burstRow{Webhooks: 1000, Rep: i + 1, Changes: 1000, Notified: 1000 - i, Early: 400 + i*10,
			ChangesPerS: 2400, P50Ms: 1.5, P95Ms: 10, P99Ms: []float64{15.9, 1.5, 1.9}[i], MaxMs: 18, CPUUs: 230, ServersPct: 25, CoreBusyPct: 80,
			GenPct: 14.7})
	}
	// An older run's row, without generator or limit, for another count.
	res.Deliveries = append(res.Deliveries, deliveryRow{Webhooks: 100, Rep: 1, Delivered: 100, PerS: 1000, RawPerS: 2000, GenPct: 86})
	var b bytes.Buffer
	printTables(&b, res)
	out := b.String()
	f := func(got []string, i int, want string) {
		t.Helper()
		if got[i] != want {
			t.Fatalf("%q: field %d is %q; want %q", got, i, got[i], want)
		}
	}
	// webhooks generator delivered deliveries/s ±% raw-post/s x raw µs/delivery raw µs/POST µs/creation busy% other% gen% headroom% limit reps
	d := line(t, out, "1000", "vegeta")
	f(d, 2, "999")   // the least delivered
	f(d, 3, "2700")  // median
	f(d, 4, "37.0")  // (3000 - 2000) / 2700
	f(d, 5, "13000") // median raw-post
	f(d, 6, "0.21")  // 2700 / 13000
	f(d, 7, "210.0") // median CPU
	f(d, 11, "17.0") // other: 80 busy - 63 servers
	f(d, 12, "39.0") // median generator
	f(d, 13, "61.0") // its headroom
	f(d, 14, "concurrency/server")
	f(d, 15, "3")
	old := line(t, out, "100", "k6")
	f(old, 11, "-")
	f(old, 14, "-")
	if strings.Index(out, "     100 k6") > strings.Index(out, "    1000 vegeta") {
		t.Fatal("webhook counts not in increasing order")
	}
	// (burst) webhooks changes notified early changes/s p50 p95 p99 max p99±% µs/change busy% other% gen% headroom% reps
	bu := line(t, out, "1000", "1000", "998")
	f(bu, 3, "410")
	f(bu, 4, "2400")
	f(bu, 7, "1.900")
	f(bu, 9, "757.9") // (15.9 - 1.5) / 1.9 * 100, the spread
	f(bu, 10, "230.0")
	f(bu, 12, "55.0") // 80 busy - 25 servers
	f(bu, 14, "85.3")

	c := line(t, out, "deliveries", "1000:", "deliveries/s")
	f(c, 6, "0.21")
	f(c, 9, "no")
	if got := strings.Join(c[10:], " "); got != "concurrency/server / server/concurrency" {
		t.Fatalf("deliveries' limits %q", got)
	}
	c = line(t, out, "deliveries", "100:", "deliveries/s")
	if got := strings.Join(c[10:], " "); got != "- / -" {
		t.Fatalf("an older run's limits %q", got)
	}
	c = line(t, out, "burst", "1000:", "notification", "p99", "ms")
	f(c, 5, "1.9")
	f(c, 8, "<=")
	f(c, 9, "2.00")
	f(c, 10, "yes")
	if len(c) != 11 {
		t.Fatalf("burst p99 with a generator under 90 %%: no limit expected, got %q", c)
	}
	c = line(t, out, "burst", "1000:", "notification", "max", "ms")
	f(c, 5, "18.0")

	// A generator at its limit shows.
	for i := range res.Burst {
		res.Burst[i].GenPct = 95
	}
	b.Reset()
	printTables(&b, results{Burst: res.Burst})
	c = line(t, b.String(), "burst", "1000:", "notification", "p99", "ms")
	f(c, len(c)-1, "generator")
}

// TestTablesOfADeliveryRun prints the tables of the rows of
// `go run ./loadtest -scenarios deliveries,burst quick` kept in
// testdata/results-deliveries (a machine shared with other work: the
// server core was busy beyond the servers) and checks figures in them.
func TestTablesOfADeliveryRun(t *testing.T) {
	res, err := readResults(filepath.Join("testdata", "results-deliveries"))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Loads) != 0 || len(res.Deliveries) != 1 || len(res.Burst) != 1 || len(res.Latency) != 0 || len(res.Coalescing) != 0 {
		t.Fatalf("got %d, %d, %d, %d, %d rows", len(res.Loads), len(res.Deliveries), len(res.Burst), len(res.Latency), len(res.Coalescing))
	}
	var b bytes.Buffer
	printTables(&b, res)
	out := b.String()
	f := func(got []string, i int, want string) {
		t.Helper()
		if got[i] != want {
			t.Fatalf("%q: field %d is %q; want %q", got, i, got[i], want)
		}
	}
	d := line(t, out, "1000", "vegeta", "1000")
	f(d, 3, "2151")
	f(d, 5, "12423")
	f(d, 6, "0.17") // 2150.538 / 12423.148
	f(d, 7, "260.0")
	f(d, 8, "52.6")
	f(d, 10, "98.6")
	f(d, 11, "40.4") // 98.551 - 58.180
	f(d, 12, "32.0")
	f(d, 13, "68.0")
	f(d, 14, "server")
	bu := line(t, out, "1000", "1000", "1000", "105")
	f(bu, 4, "2021")
	f(bu, 5, "3.047")
	f(bu, 7, "11.792")
	f(bu, 8, "36.661")
	f(bu, 12, "24.6") // 94.286 - 69.711
	f(bu, 13, "14.2")
	c := line(t, out, "deliveries", "1000:", "deliveries/s")
	f(c, 6, "0.17")
	f(c, 9, "no")
	if got := strings.Join(c[10:], " "); got != "server / server" {
		t.Fatalf("limits %q", got)
	}
	c = line(t, out, "burst", "1000:", "notification", "p99", "ms")
	f(c, 5, "11.8")
	f(c, 10, "no")
}
