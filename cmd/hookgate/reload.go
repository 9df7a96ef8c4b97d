package main

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hookgate/hookgate/core"
	"github.com/hookgate/hookgate/gateway/rules"
)

// liveSettings are the settings a reload applies while hookgate runs:
// the log level, the rule table (its file, or the Pryv table's account
// changes) and the retry schedule. The request limits are not among them: the server
// reads most of them once, when it is built, and the parts of the
// gateway that read the others per request keep them in its options.
var liveSettings = map[string]bool{"log-level": true, "rules": true, "account-changes": true, "retry-schedule": true}

// reloader reads the settings again on SIGHUP, as at start (the -config
// file, the environment, then the command line), and applies what
// changed among liveSettings. It logs every setting that changed; those
// that need a restart are named in a warning and left as they run. New
// settings that cannot be read, or a rule table that does not compile,
// change nothing.
type reloader struct {
	args   []string
	values map[string]string // the settings hookgate runs with, by flag name
	level  *slog.LevelVar
	log    *slog.Logger

	rules    rules.Config // what the running rule table was compiled from
	setRules func(*rules.Table)
	mu       sync.Mutex // guards setSchedule, set as the engine starts
	// setSchedule applies a retry schedule; nil until the engine runs,
	// and a new schedule then needs a restart.
	setSchedule func([]time.Duration)
}

// setScheduleOnce hands over what applies a retry schedule, once the
// engine runs.
func (r *reloader) setScheduleOnce(f func([]time.Duration)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.setSchedule = f
}

// watch reloads on every value of hup until ctx ends.
func (r *reloader) watch(ctx context.Context, hup <-chan os.Signal) {
	for {
		select {
		case <-hup:
			r.reload()
		case <-ctx.Done():
			return
		}
	}
}

// reload reads the settings and applies what changed (see reloader).
func (r *reloader) reload() {
	r.mu.Lock()
	defer r.mu.Unlock()
	var c config
	fs, err := loadSettings(&c, r.args, flag.ContinueOnError)
	if err != nil {
		r.log.Error("SIGHUP: the settings cannot be read; nothing changed", "err", err)
		return
	}
	level, err := parseLevel(c.logLevel)
	if err != nil {
		r.log.Error("SIGHUP: the settings cannot be read; nothing changed", "err", err)
		return
	}
	rc, err := ruleConfig(c)
	if err != nil {
		r.log.Error("SIGHUP: the rules cannot be read; nothing changed", "err", err)
		return
	}
	schedule, err := core.ParseSchedule(c.retrySchedule)
	if err != nil {
		r.log.Error("SIGHUP: -retry-schedule cannot be read; nothing changed", "err", err)
		return
	}
	var table *rules.Table
	newRules := !reflect.DeepEqual(rc, r.rules)
	if newRules {
		if table, err = rules.Compile(rc); err != nil {
			r.log.Error("SIGHUP: the rules do not compile; nothing changed", "err", err)
			return
		}
	}

	values := settingValues(fs)
	var changed, applied, restart []string
	for name, v := range values {
		if v == r.values[name] {
			continue
		}
		changed = append(changed, name)
		if liveSettings[name] && (name != "retry-schedule" || r.setSchedule != nil) {
			applied = append(applied, name)
		} else {
			restart = append(restart, name)
		}
	}
	if newRules && !slices.Contains(changed, "rules") { // the same file, new content
		changed, applied = append(changed, "rules"), append(applied, "rules")
	}
	sort.Strings(changed)
	sort.Strings(applied)
	sort.Strings(restart)

	if newRules {
		r.setRules(table)
		r.rules = rc
	}
	if slices.Contains(applied, "retry-schedule") {
		r.setSchedule(schedule)
	}
	for _, name := range applied {
		if v, ok := values[name]; ok {
			r.values[name] = v
		}
	}
	// The summary is logged at the more verbose of the two levels, so
	// that a reload that quietens the logs still shows.
	quieter := level > r.level.Level()
	if !quieter {
		r.level.Set(level)
	}
	if len(changed) == 0 {
		r.log.Info("SIGHUP: settings read again; nothing changed")
	} else {
		r.log.Info("SIGHUP: settings reloaded", "changed", strings.Join(changed, ","), "applied", strings.Join(applied, ","))
	}
	if quieter {
		r.level.Set(level)
	}
	if len(restart) > 0 {
		r.log.Warn("SIGHUP: these settings changed and need a restart; they keep their running values", "settings", strings.Join(restart, ","))
	}
}
