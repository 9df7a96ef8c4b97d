// Command hookgate is the webhook gateway: a proxy in front of a Pryv-like
// API that records every change durably before answering, for the
// notifications that follow.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"
	"gopkg.in/yaml.v3"

	"github.com/hookgate/hookgate/admin"
	"github.com/hookgate/hookgate/core"
	"github.com/hookgate/hookgate/delivery"
	"github.com/hookgate/hookgate/gateway"
	"github.com/hookgate/hookgate/gateway/rules"
	"github.com/hookgate/hookgate/gateway/webhooks"
)

type config struct {
	listen, opsListen, upstreams, dataDir, usernameMode, durability, rulesFile string
	secretsKeyFile                                                             string
	apiVersion, serial, logLevel, logFormat                                    string
	fixVersion, fixSerial                                                      bool // -api-version, -serial given: not learned
	pprof                                                                      bool
	upstreamTimeout, dialTimeout, readTimeout, writeTimeout, idleTimeout       time.Duration
	upstreamIdle                                                               time.Duration
	shutdownTimeout                                                            time.Duration
	maxConns, maxBacklog, maxPending, bufferBody, maxClassifyBody              int
	accountChanges                                                             bool

	minInterval, minIntervalFloor, accessCacheTTL, deliveryTimeout time.Duration
	maxRetries, maxRetriesCeiling, maxPerAccess, accessCacheSize   int
	allowCIDRs                                                     string
	workers                                                        int
	minFreeDisk                                                    uint64
	maxBody                                                        int64
	maxHeader, maxClientConns, maxConnsPerIP                       int

	adminKey, retrySchedule, alertURL string
	rotationGrace                     time.Duration
	maxWebSockets                     int
	wsIdle, wsMaxDuration             time.Duration

	cluster clusterConfig

	configFile                string
	printVersion, healthcheck bool // commands: -version, -healthcheck
}

// defaultGOGC is the garbage collector's target unless GOGC is set: the
// heap may grow by half its live size between collections, not double.
// hookgate's live heap is mostly its resident webhooks (about 0.7 KiB
// each), which a collection costs little to mark, and 50 keeps a million
// of them within 1.5 GiB (BENCHMARKS.md, "State at scale").
const defaultGOGC = 50

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGOGC)
	}
	// # HELP and # TYPE for every family, so that Prometheus records
	// each one's type (its metadata API) and promtool accepts the page.
	metrics.ExposeMetadata(true)
	if len(os.Args) > 1 && os.Args[1] == "admin" {
		os.Exit(runAdmin(os.Args[2:], os.Stdout, os.Stderr))
	}
	if len(os.Args) > 1 && (os.Args[1] == "export" || os.Args[1] == "import") {
		os.Exit(runMove(os.Args[1], os.Args[2:], os.Stdin, os.Stdout, os.Stderr))
	}
	var c config
	fs, err := loadSettings(&c, os.Args[1:], flag.ExitOnError)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if c.printVersion {
		fmt.Println(versionString())
		return
	}
	if bad := unknownEnv(fs); len(bad) > 0 {
		for _, line := range bad {
			fmt.Fprintln(os.Stderr, "hookgate:", line)
		}
		os.Exit(2)
	}
	if c.healthcheck {
		if err := checkHealth(c.opsListen, 2*time.Second); err != nil {
			fmt.Fprintln(os.Stderr, "hookgate -healthcheck:", err)
			os.Exit(1)
		}
		return
	}
	log, level, err := newLogger(c.logLevel, c.logFormat)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	r := &reloader{args: os.Args[1:], values: settingValues(fs), level: level, log: log}
	if err := run(c, log, r); err != nil {
		log.Error("hookgate stopped", "err", err)
		os.Exit(1)
	}
}

// newFlagSet defines every flag of hookgate, each bound to its field of c.
func newFlagSet(c *config, onError flag.ErrorHandling) *flag.FlagSet {
	fs := flag.NewFlagSet("hookgate", onError)
	fs.StringVar(&c.listen, "listen", "127.0.0.1:8080", "`address` the proxy listens on, host:port (use :8080 for every interface)")
	fs.StringVar(&c.opsListen, "ops-listen", "127.0.0.1:9090", "`address` for /metrics, /healthz and /readyz; empty disables them")
	fs.StringVar(&c.upstreams, "upstream", "127.0.0.1:3000", "upstream API `addresses`, host:port, comma-separated; requests go to the least loaded")
	fs.StringVar(&c.dataDir, "data-dir", "data", "`directory` of the Badger database holding the change queue; created if missing")
	fs.StringVar(&c.usernameMode, "username-mode", "path", "where requests carry the username: `path` (/{username}/events) or subdomain ({username}.domain/events)")
	c.cluster.register(fs)
	fs.StringVar(&c.durability, "durability", "sync", "`mode` of change markers: sync (fsync before the client is answered, grouped across requests) or async (written before answering, synced every second: survives a hookgate crash, not a machine crash)")
	fs.StringVar(&c.rulesFile, "rules", "", "JSON `file` of generic change rules (method + path pattern -> message) replacing the built-in Pryv table; SIGHUP reads it again")
	fs.BoolVar(&c.accountChanges, "account-changes", false, "also notify accountChanged for account and password changes (Pryv table only)")
	fs.DurationVar(&c.upstreamTimeout, "upstream-timeout", 30*time.Second, "`duration` allowed for one upstream exchange, streamed bodies included; past it the client gets 504")
	fs.DurationVar(&c.dialTimeout, "dial-timeout", 3*time.Second, "`duration` allowed to connect to the upstream; past it the client gets 504")
	fs.BoolVar(&c.pprof, "pprof", false, "serve Go's profiles under /debug/pprof/ on -ops-listen")
	fs.DurationVar(&c.upstreamIdle, "upstream-idle-timeout", 4*time.Second, "`duration` a pooled upstream connection may stay idle; keep it below the upstream's own keep-alive timeout (Node's default: 5 s)")
	fs.DurationVar(&c.readTimeout, "read-timeout", 60*time.Second, "`duration` allowed to read a client's request, body included")
	fs.DurationVar(&c.writeTimeout, "write-timeout", 60*time.Second, "`duration` allowed to write a response to a client, body included")
	fs.DurationVar(&c.idleTimeout, "idle-timeout", 60*time.Second, "`duration` an idle client keep-alive connection is kept")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 15*time.Second, "`duration` allowed on SIGINT/SIGTERM for in-flight requests to finish before exit")
	fs.IntVar(&c.maxConns, "max-upstream-conns", 1024, "`connections` at most to each upstream address")
	sizeVar(fs, &c.maxBody, "max-body", 1<<30, "largest request body in `bytes` forwarded; larger ones get 413; 0 for no limit")
	sizeVar(fs, &c.maxHeader, "max-header", 16<<10, "largest request head (request line and headers) in `bytes`; larger ones get 431")
	fs.IntVar(&c.maxWebSockets, "max-websockets", 5_000, "WebSocket `connections` passed to the upstream at once (socket.io, say); past it an upgrade gets 503. They count among -max-client-conns")
	fs.DurationVar(&c.wsIdle, "websocket-idle-timeout", 2*time.Minute, "`duration` after which a WebSocket connection that carried nothing either way is closed (socket.io pings every 25 s)")
	fs.DurationVar(&c.wsMaxDuration, "websocket-max-duration", 24*time.Hour, "`duration` after which a WebSocket connection is closed, active or not (its client connects again); 0 for no limit")
	fs.IntVar(&c.maxClientConns, "max-client-conns", 10_000, "client `connections` served at once; past it new ones get 503 and are closed")
	c.maxConnsPerIP = autoConnsPerIP
	fs.Var(connCap{&c.maxConnsPerIP}, "max-conns-per-ip", "client `connections` at once from one IP address; past it new ones from that address get 429 and are closed; auto is an eighth of -max-client-conns (1250 of 10000: room for a NAT's many clients, while no one address takes every slot); 0 for no cap")
	sizeVar(fs, &c.bufferBody, "buffer-body", 64<<10, "request bodies up to this many `bytes` are read before forwarding; larger ones are streamed")
	fs.StringVar(&c.secretsKeyFile, "secrets-key-file", "", "`file` holding the key (64 hex digits) that encrypts webhook signing secrets in the database; created with a random key if missing; default secrets.key in -data-dir (keep it elsewhere, e.g. a secrets mount, so that a copy of the data directory alone does not reveal the secrets)")
	sizeVar(fs, &c.minFreeDisk, "min-free-disk", 256<<20, "`bytes` kept free on the data directory's disk: below it hookgate stops writing (changes are still answered, their markers counted as failed, readiness fails) and resumes once there is room; 0 disables the check")
	sizeVar(fs, &c.maxClassifyBody, "max-classify-body", 16<<20, "largest batch-call or form-override body in `bytes` read to learn what changed; larger ones get 413")
	fs.IntVar(&c.maxBacklog, "max-backlog", 0, "unacknowledged change markers at most (`count`); 0 means the disk is the limit")
	fs.IntVar(&c.maxPending, "max-pending", 16384, "change markers at most waiting for the disk (`count`); past it a change is counted as lost and readiness fails")
	fs.DurationVar(&c.minInterval, "min-interval", 5*time.Second, "`duration` stamped on new webhooks as minIntervalMs: at most one notification per webhook per interval")
	fs.DurationVar(&c.minIntervalFloor, "min-interval-floor", time.Second, "smallest minIntervalMs (`duration`) a client may ask for when creating a webhook")
	fs.IntVar(&c.maxRetries, "max-retries", 5, "`count` stamped on new webhooks as maxRetries: failed attempts in a row before a webhook turns inactive")
	fs.IntVar(&c.maxRetriesCeiling, "max-retries-ceiling", 20, "largest maxRetries (`count`) a client may ask for when creating a webhook")
	fs.IntVar(&c.maxPerAccess, "max-webhooks-per-access", 100, "webhooks one access may create (`count`); -1 for no cap")
	fs.DurationVar(&c.accessCacheTTL, "access-cache-ttl", 5*time.Second, "`duration` an upstream access-info answer (token -> access id and type) is trusted")
	fs.IntVar(&c.accessCacheSize, "access-cache-size", 10000, "access-info answers cached at most (`count`)")
	fs.DurationVar(&c.deliveryTimeout, "delivery-timeout", 10*time.Second, "`duration` allowed for one POST to a webhook receiver (webhooks.test, deliveries)")
	fs.IntVar(&c.workers, "workers", 256, "deliveries in flight at most across all webhooks (`count`): the size of the delivery pool")
	fs.StringVar(&c.retrySchedule, "retry-schedule", "", "`waits` after each failed attempt in a row, comma-separated, the last repeating (5s,5m,30m,2h,5h,10h); empty: Pryv's linear backoff, minIntervalMs times the failures in a row. A webhook still turns inactive after maxRetries failures")
	fs.StringVar(&c.alertURL, "alert-url", "", "`URL` that gets a JSON POST ({\"type\":\"webhook.deactivated\",...}) each time hookgate deactivates a webhook: an operator's alert; any address, loopback and private ones included")
	fs.DurationVar(&c.rotationGrace, "secret-rotation-grace", 24*time.Hour, "`duration` a rotated signing secret keeps signing notifications beside the new one (POST /{username}/webhooks/{id}/rotate-secret)")
	fs.StringVar(&c.adminKey, "admin-key", "", "`key` of the operator API under /admin/ on -ops-listen (Authorization: Bearer KEY) and of hookgate admin; empty disables it. Give it as HOOKGATE_ADMIN_KEY_FILE rather than on the command line")
	fs.StringVar(&c.allowCIDRs, "allow-cidrs", "", "comma-separated `CIDRs` that webhook URLs may reach although not global (e.g. 127.0.0.0/8 for a local receiver); every other loopback, private, link-local or special address is refused at dial time")
	fs.StringVar(&c.apiVersion, "api-version", "1.9.3", "`version` reported as meta.apiVersion in hookgate's own answers and notifications; unset, the upstream's, learned from its answers (this value until then)")
	fs.StringVar(&c.serial, "serial", "hookgate", "`string` reported as meta.serial in hookgate's own answers and notifications; unset, the upstream's, learned from its answers (this value until then)")
	fs.StringVar(&c.logLevel, "log-level", "info", "`level` of logs: debug, info, warn or error; SIGHUP applies a new one")
	fs.StringVar(&c.logFormat, "log-format", "text", "`format` of logs: text or json")
	fs.StringVar(&c.configFile, "config", "", "YAML `file` of settings, each key a flag's name (upstream-timeout: 10s); the environment, then the command line, win over it; SIGHUP reads it again")
	fs.BoolVar(&c.printVersion, "version", false, "print the version and exit")
	fs.BoolVar(&c.healthcheck, "healthcheck", false, "ask the instance at -ops-listen whether it is ready (GET /readyz); exit 0 if it is, 1 if not: for Docker's HEALTHCHECK")
	fs.Usage = func() { printUsage(fs) }
	return fs
}

// flagTopics are the headings of -help and the flags under each.
var flagTopics = []struct {
	heading string
	flags   []string
}{
	{"Listening", []string{"listen", "ops-listen", "username-mode", "read-timeout", "write-timeout", "idle-timeout", "shutdown-timeout"}},
	{"Upstream", []string{"upstream", "upstream-timeout", "dial-timeout", "upstream-idle-timeout", "max-upstream-conns"}},
	{"Change detection", []string{"rules", "account-changes"}},
	{"Change queue and durability", []string{"data-dir", "durability", "max-pending", "max-backlog", "min-free-disk"}},
	{"Webhooks API", []string{"min-interval", "min-interval-floor", "max-retries", "max-retries-ceiling", "max-webhooks-per-access",
		"access-cache-ttl", "access-cache-size", "secrets-key-file", "secret-rotation-grace", "api-version", "serial"}},
	{"Delivery", []string{"workers", "delivery-timeout", "allow-cidrs", "retry-schedule", "alert-url"}},
	{"Limits", []string{"max-body", "max-header", "buffer-body", "max-classify-body", "max-client-conns", "max-conns-per-ip",
		"max-websockets", "websocket-idle-timeout", "websocket-max-duration"}},
	{"Observability", []string{"log-level", "log-format", "pprof", "healthcheck"}},
	{"Operator API", []string{"admin-key"}},
	{"Cluster (JetStream)", clusterFlags},
	{"Configuration", []string{"config", "version"}},
}

// printUsage writes -help: how settings are given, then the flags of fs
// under their headings (flagTopics; any flag missing there under Other).
func printUsage(fs *flag.FlagSet) {
	w := fs.Output()
	fmt.Fprint(w, `Usage: hookgate [flags]

Every flag can also be set with the environment variable HOOKGATE_<NAME>,
for example HOOKGATE_UPSTREAM_TIMEOUT=10s, or HOOKGATE_<NAME>_FILE naming
a file that holds the value (a trailing newline is dropped), or in the
-config file; the environment wins over the file, and the command line
over both. A HOOKGATE_ variable that names no flag stops hookgate.
SIGHUP reads the -config file and the environment again and applies the
log level and the rule table; other changes need a restart.
`)
	listed := map[string]bool{}
	group := func(heading string, names []string) {
		fmt.Fprintf(w, "\n%s:\n", heading)
		for _, name := range names {
			f := fs.Lookup(name)
			if f == nil {
				continue
			}
			// One flag set per flag, so that the flags keep their order
			// here, in flag's own format.
			one := flag.NewFlagSet(name, flag.ContinueOnError)
			one.SetOutput(w)
			one.Var(f.Value, f.Name, f.Usage)
			one.Lookup(name).DefValue = f.DefValue // the default, not the value set
			one.PrintDefaults()
			listed[name] = true
		}
	}
	for _, t := range flagTopics {
		group(t.heading, t.flags)
	}
	var rest []string
	fs.VisitAll(func(f *flag.Flag) {
		if !listed[f.Name] {
			rest = append(rest, f.Name)
		}
	})
	if len(rest) > 0 {
		group("Other", rest)
	}
}

// autoConnsPerIP is -max-conns-per-ip auto.
const autoConnsPerIP = -1

// connCap is -max-conns-per-ip: a number of connections, 0 for no cap,
// or auto (autoConnsPerIP), an eighth of -max-client-conns.
type connCap struct{ p *int }

func (v connCap) String() string {
	switch {
	case v.p == nil:
		return "0"
	case *v.p == autoConnsPerIP:
		return "auto"
	}
	return strconv.Itoa(*v.p)
}

func (v connCap) Set(s string) error {
	if strings.TrimSpace(s) == "auto" {
		*v.p = autoConnsPerIP
		return nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 0 {
		return errors.New("want a number of connections, 0 for no cap, or auto")
	}
	*v.p = n
	return nil
}

// connsPerIP resolves -max-conns-per-ip: auto is an eighth of the client
// connections served at once (total; the gateway's 10,000 when unset),
// at least 1.
func connsPerIP(perIP, total int) int {
	if perIP != autoConnsPerIP {
		return perIP
	}
	if total <= 0 {
		total = 10_000
	}
	return max(1, total/8)
}

// loadSettings defines every flag into c, then sets them from the -config
// file, the environment and args, each winning over the one before.
// With flag.ExitOnError a bad command line, or -help, exits.
func loadSettings(c *config, args []string, onError flag.ErrorHandling) (*flag.FlagSet, error) {
	fs := newFlagSet(c, onError)
	if onError != flag.ExitOnError {
		fs.SetOutput(io.Discard)
	}
	path, err := configPath(args)
	if err != nil {
		return fs, err
	}
	if path != "" {
		if err := applyConfig(fs, path); err != nil {
			return fs, err
		}
	}
	if err := applyEnv(fs); err != nil {
		return fs, err
	}
	if err := fs.Parse(args); err != nil {
		return fs, err
	}
	fs.Visit(func(f *flag.Flag) { // set on the command line, by HOOKGATE_* or by -config
		c.fixVersion = c.fixVersion || f.Name == "api-version"
		c.fixSerial = c.fixSerial || f.Name == "serial"
	})
	return fs, nil
}

// settingValues returns the value of every setting of fs, by flag name,
// as its flag prints it (sizes in one form whatever the unit given).
func settingValues(fs *flag.FlagSet) map[string]string {
	m := map[string]string{}
	fs.VisitAll(func(f *flag.Flag) {
		if !commandFlags[f.Name] {
			m[f.Name] = f.Value.String()
		}
	})
	return m
}

// checkHealth asks the ops listener at addr (as -ops-listen gives it;
// an unspecified host is this machine) for /readyz, within timeout.
func checkHealth(addr string, timeout time.Duration) error {
	if addr == "" {
		return errors.New("-ops-listen is empty: no /readyz to ask")
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return err
	}
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + loopbackIfUnspecified(addr) + "/readyz")
	if err := fasthttp.DoTimeout(req, resp, timeout); err != nil {
		return err
	}
	if resp.StatusCode() != fasthttp.StatusOK {
		body := resp.Body()
		return fmt.Errorf("not ready: %d %s", resp.StatusCode(), strings.TrimSpace(string(body[:min(len(body), 512)])))
	}
	return nil
}

// commandFlags are flags that are commands, not settings: only the
// command line gives them, neither the environment nor the -config file.
var commandFlags = map[string]bool{"version": true, "healthcheck": true}

// testEnv are the HOOKGATE_ variables of hookgate's own test suite, which
// the tests' environment passes on to the binaries they start.
var testEnv = map[string]bool{
	"HOOKGATE_REQUIRE_NODE": true, "HOOKGATE_CRASH_CYCLES": true, "HOOKGATE_CRASH_SEED": true, "HOOKGATE_SCALE_N": true,
}

// unknownEnv returns a line for each HOOKGATE_ variable of the environment
// that sets no flag (a typo would otherwise pass unseen), naming the
// closest variable that would when one is close. HOOKGATE_<NAME>_FILE
// of a flag is known, as is testEnv.
func unknownEnv(fs *flag.FlagSet) []string {
	known := map[string]bool{}
	var names []string
	fs.VisitAll(func(f *flag.Flag) {
		if !commandFlags[f.Name] {
			known[envName(f.Name)], known[envName(f.Name)+"_FILE"] = true, true
			names = append(names, envName(f.Name), envName(f.Name)+"_FILE")
		}
	})
	var out []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "HOOKGATE_") || known[name] || testEnv[name] {
			continue
		}
		if f := fs.Lookup(strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(name, "HOOKGATE_"), "_", "-"))); f != nil && commandFlags[f.Name] {
			out = append(out, fmt.Sprintf("environment variable %s refused: -%s is a command, given on the command line only", name, f.Name))
			continue
		}
		line := fmt.Sprintf("unknown environment variable %s: no flag has this name (hookgate -help lists them)", name)
		if near := closest(name, names); near != "" {
			flagName := strings.ToLower(strings.ReplaceAll(strings.TrimSuffix(strings.TrimPrefix(near, "HOOKGATE_"), "_FILE"), "_", "-"))
			line = fmt.Sprintf("unknown environment variable %s: no flag has this name; did you mean %s (-%s)?", name, near, flagName)
		}
		out = append(out, line)
	}
	sort.Strings(out)
	return out
}

// closest returns the name of names nearest to s in edit distance, if it
// is close: at most 2 edits, or a quarter of the name after HOOKGATE_.
func closest(s string, names []string) string {
	best, bestD := "", math.MaxInt
	for _, n := range names {
		if d := editDistance(s, n); d < bestD {
			best, bestD = n, d
		}
	}
	if bestD <= max(2, len(strings.TrimPrefix(s, "HOOKGATE_"))/4) {
		return best
	}
	return ""
}

// editDistance is the Levenshtein distance of a and b, in bytes.
func editDistance(a, b string) int {
	prev, cur := make([]int, len(b)+1), make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// configPath returns the -config file named on the command line, or by
// HOOKGATE_CONFIG (or HOOKGATE_CONFIG_FILE), or "". It is read before the
// environment and the command line, which win over it.
func configPath(args []string) (string, error) {
	path, _, err := envValue("config")
	if err != nil {
		return "", err
	}
	for i, a := range args {
		if a == "--" {
			break
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if name != "config" || !strings.HasPrefix(a, "-") {
			continue
		}
		if hasValue {
			path = value
		} else if i+1 < len(args) {
			path = args[i+1]
		}
	}
	return path, nil
}

// applyConfig sets flags from the YAML file at path: a map whose keys are
// flag names and whose values are what the flag takes (a list is joined
// with commas, for -upstream). An unknown key or a bad value is an error,
// as an unknown flag is.
func applyConfig(fs *flag.FlagSet, path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("-config: %w", err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(raw, &m); err != nil {
		return fmt.Errorf("-config %s: %w", path, err)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		f := fs.Lookup(k)
		if f == nil || k == "config" || commandFlags[k] {
			return fmt.Errorf("-config %s: unknown setting %q (settings are flag names: hookgate -help)", path, k)
		}
		var v string
		switch x := m[k].(type) {
		case nil:
			return fmt.Errorf("-config %s: %s has no value", path, k)
		case []any:
			parts := make([]string, len(x))
			for i, p := range x {
				parts[i] = fmt.Sprint(p)
			}
			v = strings.Join(parts, ",")
		default:
			v = fmt.Sprint(x)
		}
		if err := fs.Set(k, v); err != nil { // counted as set, as on the command line
			return fmt.Errorf("-config %s: %s: %q: %w", path, k, v, err)
		}
	}
	return nil
}

// envName is the environment variable of flag name: HOOKGATE_ and the
// name in capitals, dashes as underscores.
func envName(name string) string {
	return "HOOKGATE_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// envValue returns the value the environment gives flag name: that of
// HOOKGATE_<NAME>, or the content of the file HOOKGATE_<NAME>_FILE names
// with one trailing newline dropped (for secrets kept in files, as
// Docker and systemd give them). Both variables set is an error.
func envValue(name string) (v string, ok bool, err error) {
	env := envName(name)
	v, direct := os.LookupEnv(env)
	path, fromFile := os.LookupEnv(env + "_FILE")
	switch {
	case direct && fromFile:
		return "", false, fmt.Errorf("%s and %s_FILE are both set: set one of them", env, env)
	case !fromFile:
		return v, direct, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", false, fmt.Errorf("%s_FILE: %w", env, err)
	}
	v = string(b)
	if s, cut := strings.CutSuffix(v, "\n"); cut {
		v = strings.TrimSuffix(s, "\r")
	}
	return v, true, nil
}

// applyEnv sets each flag from HOOKGATE_<NAME> or HOOKGATE_<NAME>_FILE
// when one is set (envValue). A value read from a file is not repeated in
// an error: it may be a secret.
func applyEnv(fs *flag.FlagSet) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || commandFlags[f.Name] {
			return
		}
		v, ok, e := envValue(f.Name)
		if e != nil {
			err = e
			return
		}
		if !ok {
			return
		}
		if e := fs.Set(f.Name, v); e != nil { // counted as set, as on the command line
			name := envName(f.Name)
			if _, direct := os.LookupEnv(name); direct {
				err = fmt.Errorf("%s=%q: %w", name, v, e)
			} else {
				err = fmt.Errorf("%s_FILE=%s: the file's content: %w", name, os.Getenv(name+"_FILE"), e)
			}
		}
	})
	return err
}

// newLogger returns the logger of -log-level and -log-format, and the
// level it logs at, which a reload may change.
func newLogger(level, format string) (*slog.Logger, *slog.LevelVar, error) {
	lv := new(slog.LevelVar)
	l, err := parseLevel(level)
	if err != nil {
		return nil, nil, err
	}
	lv.Set(l)
	o := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, o)), lv, nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, o)), lv, nil
	}
	return nil, nil, fmt.Errorf("-log-format %q: want text or json", format)
}

// parseLevel reads -log-level.
func parseLevel(level string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return 0, fmt.Errorf("-log-level: %w", err)
	}
	return l, nil
}

// ruleConfig returns the rules of c: the -rules file, or the Pryv table.
func ruleConfig(c config) (rules.Config, error) {
	if c.rulesFile != "" {
		return rules.Load(c.rulesFile)
	}
	return rules.Pryv(c.accountChanges), nil
}

// run serves until SIGINT or SIGTERM; on SIGHUP r reloads the settings.
func run(c config, log *slog.Logger, r *reloader) error {
	// Caught from the start: SIGHUP's default action would kill hookgate.
	// One that comes while hookgate starts is handled once it serves.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	mode, err := gateway.ParseUsernameMode(c.usernameMode)
	if err != nil {
		return err
	}
	if c.durability != "sync" && c.durability != "async" {
		return fmt.Errorf("-durability %q: want sync or async", c.durability)
	}
	rc, err := ruleConfig(c)
	if err != nil {
		return err
	}
	table, err := rules.Compile(rc)
	if err != nil {
		return fmt.Errorf("rules: %w", err)
	}
	schedule, err := core.ParseSchedule(c.retrySchedule)
	if err != nil {
		return fmt.Errorf("-retry-schedule: %w", err)
	}
	var onDeactivate func(delivery.Deactivation)
	if c.alertURL != "" {
		if onDeactivate, err = alerter(c.alertURL, c.deliveryTimeout, log); err != nil {
			return err
		}
	}
	adm := admin.New(c.adminKey, log)

	keyFile := c.secretsKeyFile
	if keyFile == "" {
		keyFile = filepath.Join(c.dataDir, "secrets.key")
		if err := os.MkdirAll(c.dataDir, 0o700); err != nil {
			return fmt.Errorf("cannot create -data-dir: %w", err)
		}
	}
	secretsKey, err := webhooks.LoadOrCreateKey(keyFile)
	if err != nil {
		return err
	}
	sealer, err := webhooks.NewSealer(secretsKey)
	if err != nil {
		return err
	}
	var be *backend
	if c.cluster.urls != "" {
		be, err = openCluster(c, sealer, webhooks.KeyID(secretsKey), log)
	} else {
		be, err = openBadger(c, sealer, log)
	}
	if err != nil {
		return err
	}
	defer be.close() // again at the end: once
	q, space := be.log, be.space
	metrics.NewGauge(`hookgate_queue_depth`, func() float64 { return float64(be.queued()) })
	bv, br, bg := buildInfo()
	metrics.NewGauge(fmt.Sprintf(`hookgate_build_info{version=%q,revision=%q,goversion=%q}`, bv, br, bg), func() float64 { return 1 })

	allow, err := parseCIDRs(c.allowCIDRs)
	if err != nil {
		return err
	}
	meta := core.FollowMeta(c.apiVersion, c.serial, c.fixVersion, c.fixSerial)
	outbound := delivery.NewClient(delivery.ClientOptions{Timeout: c.deliveryTimeout, Guard: delivery.Guard{Allow: allow}})
	g, err := gateway.New(gateway.Options{
		Upstreams:            splitList(c.upstreams),
		UsernameMode:         mode,
		Rules:                table,
		Queue:                q,
		Meta:                 meta,
		WebhooksLater:        true,
		AccessCacheTTL:       c.accessCacheTTL,
		AccessCacheSize:      c.accessCacheSize,
		UpstreamTimeout:      c.upstreamTimeout,
		DialTimeout:          c.dialTimeout,
		MaxIdleConnDuration:  c.upstreamIdle,
		Pprof:                c.pprof,
		MaxConnsPerUpstream:  c.maxConns,
		MaxBodySize:          c.maxBody,
		MaxHeaderSize:        c.maxHeader,
		MaxConns:             c.maxClientConns,
		MaxConnsPerIP:        connsPerIP(c.maxConnsPerIP, c.maxClientConns),
		MaxWebSockets:        c.maxWebSockets,
		WebSocketIdleTimeout: c.wsIdle,
		WebSocketMaxDuration: c.wsMaxDuration,
		ReadTimeout:          c.readTimeout,
		WriteTimeout:         c.writeTimeout,
		IdleTimeout:          c.idleTimeout,
		BufferBodySize:       c.bufferBody,
		MaxClassifyBody:      c.maxClassifyBody,
		Space:                space,
		State:                be.health,
		Logger:               log,
	})
	if err != nil {
		return err
	}

	// The proxy and /healthz serve at once; changes made meanwhile are
	// queued. /readyz turns ready, and the webhooks API answers, once the
	// webhooks are loaded and the engine runs.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	r.rules, r.setRules = rc, g.SetRules
	go r.watch(ctx, hup)
	ln, err := net.Listen("tcp", c.listen)
	if err != nil {
		return fmt.Errorf("cannot listen on %q: %w", c.listen, err)
	}
	errc := make(chan error, 2)
	go func() { errc <- g.Serve(ln) }()
	var ops *fasthttp.Server
	if c.opsListen != "" {
		oln, err := net.Listen("tcp", c.opsListen)
		if err != nil {
			ln.Close()
			return fmt.Errorf("cannot listen on %q: %w", c.opsListen, err)
		}
		ops = &fasthttp.Server{Handler: withAdmin(g.OpsHandler(), adm), ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}
		go func() { errc <- ops.Serve(oln) }()
	}
	log.Info("hookgate listening; loading webhooks", "listen", ln.Addr().String(), "ops", c.opsListen)
	if !c.fixVersion || !c.fixSerial {
		go learnMeta(ctx, g, meta, log)
	}

	loadStart := time.Now()
	restoreGC := loadingGC()
	hooks, err := be.registry()
	restoreGC()
	loaded := time.Since(loadStart)
	if err != nil {
		// Stop serving before the deferred closes of the queue and the
		// database.
		_ = g.Shutdown(context.Background())
		if ops != nil {
			_ = ops.Shutdown()
		}
		return fmt.Errorf("%w (-secrets-key-file %s)", err, keyFile)
	}
	api := webhooks.NewAPI(hooks, webhooks.Options{
		MinIntervalMs:      c.minInterval.Milliseconds(),
		MaxRetries:         c.maxRetries,
		MinIntervalFloorMs: c.minIntervalFloor.Milliseconds(),
		MaxRetriesCeiling:  c.maxRetriesCeiling,
		MaxPerAccess:       c.maxPerAccess,
		Tester:             outbound,
		Reachable:          delivery.Guard{Allow: allow}.Reachable,
		Meta:               meta,
		RotationGrace:      c.rotationGrace,
	})
	engine, err := delivery.NewEngine(delivery.EngineOptions{
		Queue: q, Pending: be.pending, Webhooks: hooks, Sender: outbound, Workers: c.workers, Meta: meta, Logger: log,
		RetrySchedule: schedule, OnDeactivate: onDeactivate, Owner: be.owner, AckAtFlush: true,
	})
	if err != nil {
		_ = g.Shutdown(context.Background())
		if ops != nil {
			_ = ops.Shutdown()
		}
		return err
	}
	g.SetWebhooks(api) // ready: the engine boots every active webhook as it runs
	adm.Set(hooks, engine)
	r.setScheduleOnce(engine.SetRetrySchedule)
	ready := time.Since(loadStart)
	go engine.Run()
	debug.FreeOSMemory() // what decoding the records left behind: RSS follows the live heap
	active, inactive := hooks.Counts()
	log.Info("webhooks loaded", "active", active, "inactive", inactive, "took", loaded.Round(time.Millisecond),
		"ready_after", ready.Round(time.Millisecond), "settled_after", time.Since(loadStart).Round(time.Millisecond))
	metrics.NewGauge(`hookgate_delivery_pool_running`, func() float64 { return float64(engine.PoolRunning()) })
	metrics.NewGauge(`hookgate_delivery_pool_free`, func() float64 { return float64(engine.PoolFree()) })
	metrics.NewGauge(`hookgate_webhooks{state="active"}`, func() float64 { a, _ := hooks.Counts(); return float64(a) })
	metrics.NewGauge(`hookgate_webhooks{state="inactive"}`, func() float64 { _, i := hooks.Counts(); return float64(i) })
	engineStopped := false
	stopEngine := func() {
		if !engineStopped {
			engineStopped = true
			engine.Stop()
		}
	}
	defer stopEngine()

	log.Info("hookgate started", append([]any{"listen", ln.Addr().String(), "ops", c.opsListen, "upstream", c.upstreams,
		"username_mode", c.usernameMode, "queued", be.queued()}, be.describe...)...)

	select {
	case <-ctx.Done():
		log.Info("shutting down", "timeout", c.shutdownTimeout)
	case err := <-errc:
		return fmt.Errorf("server: %w", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), c.shutdownTimeout)
	defer cancel()
	err = g.Shutdown(sctx)
	if ops != nil {
		_ = ops.ShutdownWithContext(sctx)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		log.Warn("requests still in flight at the shutdown deadline were cut off")
	} else if err != nil {
		log.Warn("shutdown", "err", err)
	}
	// Markers of finished requests are already durable. The engine lets
	// deliveries in flight finish and stores what is still pending; then
	// the queue closes.
	stopEngine()
	queued := be.queued()
	be.close()
	log.Info("hookgate stopped", "queued", queued)
	return nil
}

var (
	commitRecords = metrics.NewPrometheusHistogramExt(`hookgate_queue_commit_records`, core.CountBuckets)
	commitErrors  = metrics.NewCounter(`hookgate_queue_commit_errors_total`)
	commitSync    = metrics.NewPrometheusHistogram(`hookgate_queue_sync_duration_seconds`)
)

func observeCommit(n int, err error) {
	if err != nil {
		commitErrors.Inc()
		return
	}
	commitRecords.Update(float64(n))
}

// parseCIDRs reads a comma-separated list of CIDRs (a bare address is a
// one-address range).
func parseCIDRs(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, p := range splitList(s) {
		if !strings.Contains(p, "/") {
			a, err := netip.ParseAddr(p)
			if err != nil {
				return nil, fmt.Errorf("-allow-cidrs %q: %w", p, err)
			}
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		pr, err := netip.ParsePrefix(p)
		if err != nil {
			return nil, fmt.Errorf("-allow-cidrs %q: %w", p, err)
		}
		out = append(out, pr.Masked())
	}
	return out, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// loadingGC turns the garbage collector off while the webhooks load, and
// returns the function that turns it back on. A load builds a heap that
// is nearly all live: collecting it on the way, as it doubles, would
// only mark the same records again and again (at a million webhooks,
// a third of the load). Unless GOMEMLIMIT sets a limit, half of the
// memory hookgate may use (the machine's, or its cgroup's if lower)
// bounds the heap meanwhile, so that a load larger than that still
// collects.
func loadingGC() (restore func()) {
	limit := debug.SetMemoryLimit(-1)
	if limit == math.MaxInt64 {
		if total := memTotal(); total > 0 {
			debug.SetMemoryLimit(total / 2)
		}
	}
	gc := debug.SetGCPercent(-1)
	return func() {
		debug.SetGCPercent(gc)
		debug.SetMemoryLimit(limit)
	}
}

// memTotal returns the memory hookgate may use, in bytes: the machine's
// (/proc/meminfo), or its cgroup's limit when that is lower; 0 where
// neither can be read.
func memTotal() int64 {
	total := int64(0)
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				if kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64); err == nil {
					total = kb << 10
				}
			}
		}
	}
	for _, path := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && n > 0 && (total == 0 || n < total) {
			total = n // "max" (no limit) does not parse
		}
	}
	return total
}

// learnMeta asks the upstream for its meta (gateway.LearnMeta) until one
// answer carries it, every 5 s for at most a minute: an upstream that is
// not Pryv has none. Access-info answers keep it current afterwards.
func learnMeta(ctx context.Context, g *gateway.Gateway, meta core.Meta, log *slog.Logger) {
	for try := 0; ; try++ {
		err := g.LearnMeta()
		if err == nil {
			cur := meta.Current()
			log.Info("meta follows the upstream's", "apiVersion", cur.APIVersion, "serial", cur.Serial)
			return
		}
		if try == 11 {
			log.Warn("the upstream's meta is not known; reporting the defaults until an access check brings it", "err", err)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Second):
		}
	}
}

// revision is the VCS revision, stamped by make build (-ldflags -X)
// where the toolchain stamps none.
var revision string

// buildInfo returns the module version, the VCS revision (with "+dirty"
// when the tree had changes) and the Go version the binary was built
// with.
func buildInfo() (version, rev, goVersion string) {
	version, rev, goVersion = "unknown", "unknown", runtime.Version()
	if revision != "" {
		rev = revision
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return
	}
	version = bi.Main.Version
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				rev += "+dirty"
			}
		}
	}
	return
}

func versionString() string {
	v, r, g := buildInfo()
	return fmt.Sprintf("hookgate %s (revision %s, %s)", v, r, g)
}
