package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/goccy/go-json"

	"github.com/hookgate/hookgate/core"
	"github.com/hookgate/hookgate/gateway/cluster"
	"github.com/hookgate/hookgate/gateway/queue"
	"github.com/hookgate/hookgate/gateway/store"
	"github.com/hookgate/hookgate/gateway/webhooks"
	"github.com/hookgate/hookgate/state"
)

// hookgate export and hookgate import move the state from one shape to
// the other (the embedded Badger database, a JetStream cluster), or to
// a new database: export writes it to stdout, import reads it from
// stdin, each with hookgate's own settings (flags, HOOKGATE_*, -config)
// naming the state it reads or writes. hookgate must be stopped on the
// side that is read, and not yet started on the other.
//
// The stream is JSON lines, one thing per line:
//
//	{"webhook":"<base64 record>"}    a webhook and its counters, its signing secrets sealed
//	{"pending":{"id":…,"set":{…}}}   a webhook's undelivered messages
//	{"marker":"<base64 marker>"}     a change marker not yet dispatched
//
// Records are in the binary form of package webhooks, secrets sealed with
// the -secrets-key-file of the export: the import needs the same key
// file, and the stream never holds a secret in clear. Run histories are
// not moved (runCount and failCount are).
type moveLine struct {
	Webhook string       `json:"webhook,omitempty"`
	Pending *movePending `json:"pending,omitempty"`
	Marker  string       `json:"marker,omitempty"`
}

type movePending struct {
	ID  string           `json:"id"`
	Set state.PendingSet `json:"set"`
}

// runMove runs hookgate export or import; it returns the exit code.
func runMove(cmd string, args []string, in io.Reader, out, stderr io.Writer) int {
	var c config
	if _, err := loadSettings(&c, args, flag.ContinueOnError); err != nil {
		fmt.Fprintf(stderr, "hookgate %s: %v\n", cmd, err)
		return 2
	}
	var err error
	switch cmd {
	case "export":
		err = exportState(c, out)
	case "import":
		err = importState(c, in)
	}
	if err != nil {
		fmt.Fprintf(stderr, "hookgate %s: %v\n", cmd, err)
		return 1
	}
	return 0
}

// moveStore is the state a move reads or writes.
type moveStore struct {
	reg     state.Registry
	pending state.Pending
	sealer  *webhooks.Sealer
	markers func(yield func(data []byte) error) error // every marker waiting; nil: none to give
	append  func(data []byte) error
	close   func()
}

// openMoveStore opens the state c names, without serving or delivering.
func openMoveStore(c config) (*moveStore, error) {
	keyFile := c.secretsKeyFile
	if keyFile == "" {
		keyFile = filepath.Join(c.dataDir, "secrets.key")
		if err := os.MkdirAll(c.dataDir, 0o700); err != nil {
			return nil, err
		}
	}
	key, err := webhooks.LoadOrCreateKey(keyFile)
	if err != nil {
		return nil, err
	}
	sealer, err := webhooks.NewSealer(key)
	if err != nil {
		return nil, err
	}
	if c.cluster.urls == "" {
		db, err := store.Open(c.dataDir, store.Options{})
		if err != nil {
			return nil, err
		}
		q, err := queue.OpenBadger(db, queue.Options{})
		if err != nil {
			db.Close()
			return nil, err
		}
		reg, err := webhooks.OpenSealedStore(db, sealer)
		if err != nil {
			q.Close()
			db.Close()
			return nil, err
		}
		return &moveStore{reg: reg, pending: store.NewPending(db, nil), sealer: sealer,
			markers: func(yield func([]byte) error) error {
				var recs []state.Record
				for from := uint64(0); ; {
					recs, err := q.Read(recs[:0], from, 1024)
					if err != nil || len(recs) == 0 {
						return err
					}
					for _, r := range recs {
						if err := yield(r.Data); err != nil {
							return err
						}
					}
					from = recs[len(recs)-1].Seq + 1
				}
			},
			append: func(data []byte) error { _, err := q.Append(data); return err },
			close:  func() { q.Close(); db.Close() },
		}, nil
	}
	nopts, err := c.cluster.natsOptions()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	conn, err := cluster.Connect(ctx, cluster.Options{URLs: c.cluster.urls, Name: c.cluster.name, Replicas: c.cluster.replicas,
		Sealer: sealer, KeyID: webhooks.KeyID(key), NATS: nopts})
	if err != nil {
		return nil, err
	}
	m, err := conn.OpenMarkers(ctx, cluster.MarkersOptions{Partitions: c.cluster.partitions, Failover: c.cluster.failover, AppendOnly: true})
	if err != nil {
		conn.Close()
		return nil, err
	}
	reg, err := conn.OpenRegistry(ctx)
	if err != nil {
		m.Close()
		conn.Close()
		return nil, err
	}
	return &moveStore{reg: reg, pending: conn.Pending().Bulk(), sealer: sealer, markers: m.Each,
		append: func(data []byte) error { _, err := m.Append(data); return err },
		close:  func() { reg.Close(); m.Close(); conn.Close() },
	}, nil
}

// exportState writes the state c names to out.
func exportState(c config, out io.Writer) error {
	s, err := openMoveStore(c)
	if err != nil {
		return err
	}
	defer s.close()
	w := bufio.NewWriterSize(out, 1<<16)
	enc := json.NewEncoder(w)
	var werr error
	s.reg.Each(func(h *core.Webhook) bool {
		werr = enc.Encode(moveLine{Webhook: base64.StdEncoding.EncodeToString(webhooks.EncodeRecord(h, s.sealer))})
		return werr == nil
	})
	if werr != nil {
		return werr
	}
	if err := s.pending.Load(func(id string, set state.PendingSet) error {
		return enc.Encode(moveLine{Pending: &movePending{ID: id, Set: set}})
	}); err != nil {
		return err
	}
	if s.markers != nil {
		if err := s.markers(func(data []byte) error {
			return enc.Encode(moveLine{Marker: base64.StdEncoding.EncodeToString(data)})
		}); err != nil {
			return err
		}
	}
	return w.Flush()
}

// parseMoveLine reads one line of an export: a webhook, a pending set
// or a marker, each checked as hookgate would store it.
func parseMoveLine(line []byte, sealer *webhooks.Sealer) (*core.Webhook, *movePending, []byte, error) {
	var l moveLine
	if err := json.Unmarshal(line, &l); err != nil {
		return nil, nil, nil, err
	}
	switch {
	case l.Webhook != "" && l.Pending == nil && l.Marker == "":
		v, err := base64.StdEncoding.DecodeString(l.Webhook)
		if err != nil {
			return nil, nil, nil, err
		}
		w, err := webhooks.DecodeRecord(v, sealer)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("%w (the same -secrets-key-file as the export's is needed)", err)
		}
		if w.User == "" || w.URL == "" {
			return nil, nil, nil, errors.New("a webhook without a user or a URL")
		}
		return w, nil, nil, nil
	case l.Pending != nil && l.Webhook == "" && l.Marker == "":
		if l.Pending.ID == "" || len(l.Pending.Set.Messages) == 0 && !l.Pending.Set.Retire {
			return nil, nil, nil, errors.New("an empty pending set")
		}
		return nil, l.Pending, nil, nil
	case l.Marker != "" && l.Webhook == "" && l.Pending == nil:
		data, err := base64.StdEncoding.DecodeString(l.Marker)
		if err != nil {
			return nil, nil, nil, err
		}
		if _, err := core.DecodeMarker(data); err != nil {
			return nil, nil, nil, err
		}
		return nil, nil, data, nil
	}
	return nil, nil, nil, errors.New("not one of a webhook, a pending set or a marker")
}

// importBatch is how many webhooks one Import stores.
const importBatch = 10_000

// importState reads a stream of exportState from in into the state c
// names, which must not hold the same webhooks.
func importState(c config, in io.Reader) error {
	s, err := openMoveStore(c)
	if err != nil {
		return err
	}
	defer s.close()
	var ws []*core.Webhook
	var ps []state.PendingWrite
	flush := func() error {
		if len(ws) > 0 {
			if err := s.reg.Import(ws); err != nil {
				return err
			}
			ws = ws[:0]
		}
		if len(ps) > 0 {
			if n, err := s.pending.Write(ps); err != nil {
				return fmt.Errorf("%d of %d pending sets written: %w", n, len(ps), err)
			}
			ps = ps[:0]
		}
		return nil
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<16), 64<<20)
	hooks, sets, markers := 0, 0, 0
	for n := 1; sc.Scan(); n++ {
		w, p, marker, err := parseMoveLine(sc.Bytes(), s.sealer)
		if err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
		switch {
		case w != nil:
			ws = append(ws, w)
			hooks++
		case p != nil:
			ps = append(ps, state.PendingWrite{ID: p.ID, Set: &p.Set})
			sets++
		default:
			if err := flush(); err != nil { // the webhooks a marker reaches first
				return err
			}
			if err := s.append(marker); err != nil {
				return err
			}
			markers++
		}
		if len(ws) >= importBatch || len(ps) >= importBatch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if err := flush(); err != nil {
		return err
	}
	if err := s.reg.Flush(); err != nil {
		return err
	}
	if hooks+sets+markers == 0 {
		return errors.New("nothing to import")
	}
	fmt.Fprintf(os.Stderr, "hookgate import: %d webhooks, %d pending sets, %d markers\n", hooks, sets, markers)
	return s.pending.Sync()
}
