package webhooks

import (
	"github.com/hookgate/hookgate/core"
	"github.com/hookgate/hookgate/state"
)

// The stored forms of a record, its counters and its runs, for every
// store that keeps webhooks (record.go): the Badger one here, and the
// cluster's.

// EncodeRecord returns w's stored form, without its runs, its secrets
// sealed by sealer (nil: stored as they are).
func EncodeRecord(w *core.Webhook, sealer *Sealer) []byte {
	secret, previous := w.Secret, w.PreviousSecret
	if sealer != nil {
		if secret != "" {
			secret = sealer.Seal(w.ID, secret)
		}
		if previous != "" {
			previous = sealer.Seal(w.ID, previous)
		}
	}
	return appendRecord(make([]byte, 0, 128+len(w.URL)+len(secret)+len(previous)), w, secret, previous)
}

// DecodeRecord decodes what EncodeRecord stored, and opens its secrets.
func DecodeRecord(v []byte, sealer *Sealer) (*core.Webhook, error) { return decodeRecord(v, sealer) }

// EncodeCounters returns c's stored form.
func EncodeCounters(c state.Counters) []byte { return appendCounters(make([]byte, 0, 24), c) }

// DecodeCounters decodes what EncodeCounters stored.
func DecodeCounters(v []byte) (state.Counters, error) { return decodeCounters(v) }

// EncodeCountersRuns returns the stored form of c followed by runs,
// numbered from first: a run and the counters it changed in one value.
func EncodeCountersRuns(c state.Counters, first int, runs []core.Run) []byte {
	return appendCountersRuns(make([]byte, 0, 32+len(runs)*30), c, first, runs)
}

// DecodeCountersRuns decodes what EncodeCounters or EncodeCountersRuns
// stored: the counters, and the runs (none for the first).
func DecodeCountersRuns(v []byte) (state.Counters, []state.Numbered, error) {
	return decodeCountersRuns(v)
}

// EncodeRun returns the stored form of run number n.
func EncodeRun(n int, r core.Run) []byte { return runValue(n, r) }

// DecodeRun decodes what EncodeRun stored.
func DecodeRun(v []byte) (state.Numbered, error) { return decodeRun(v) }
