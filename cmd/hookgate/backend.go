package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/nats-io/nats.go"

	"github.com/hookgate/hookgate/delivery"
	"github.com/hookgate/hookgate/gateway/cluster"
	"github.com/hookgate/hookgate/gateway/queue"
	"github.com/hookgate/hookgate/gateway/store"
	"github.com/hookgate/hookgate/gateway/webhooks"
	"github.com/hookgate/hookgate/state"
)

// clusterConfig are the flags of cluster mode: hookgate's state in a NATS
// JetStream cluster, shared by every instance.
type clusterConfig struct {
	urls, name, creds, nkey, user, password, token, ca, cert, key string
	replicas, partitions                                          int
	failover                                                      time.Duration
}

func (cc *clusterConfig) register(fs *flag.FlagSet) {
	fs.StringVar(&cc.urls, "nats", "", "NATS `URLs`, comma-separated: keep the state in JetStream, shared by every instance (cluster mode); empty: the embedded Badger database of -data-dir")
	fs.StringVar(&cc.name, "nats-name", "hookgate", "`prefix` of the JetStream streams and buckets; instances with the same prefix share webhooks")
	fs.IntVar(&cc.replicas, "nats-replicas", 0, "`replicas` of every stream and bucket; 0: 3 in a cluster of three servers or more, else as many as there are")
	fs.IntVar(&cc.partitions, "nats-partitions", 16, "`partitions` of the users, each delivered by one instance at a time; the same on every instance, fixed once the cluster runs")
	fs.DurationVar(&cc.failover, "failover", 5*time.Second, "the most a dead instance's partitions wait for a survivor (`duration`)")
	fs.StringVar(&cc.creds, "nats-creds", "", "NATS credentials `file` (JWT and seed)")
	fs.StringVar(&cc.nkey, "nats-nkey", "", "NATS NKey seed `file`")
	fs.StringVar(&cc.user, "nats-user", "", "NATS `user`")
	fs.StringVar(&cc.password, "nats-password", "", "NATS `password` (give it as HOOKGATE_NATS_PASSWORD_FILE)")
	fs.StringVar(&cc.token, "nats-token", "", "NATS `token` (give it as HOOKGATE_NATS_TOKEN_FILE)")
	fs.StringVar(&cc.ca, "nats-ca", "", "`file` of the CA certificates that sign the NATS servers' (TLS)")
	fs.StringVar(&cc.cert, "nats-cert", "", "client certificate `file` for NATS (TLS), with -nats-key")
	fs.StringVar(&cc.key, "nats-key", "", "client key `file` for NATS (TLS), with -nats-cert")
}

// clusterFlags are the flags above, for -help.
var clusterFlags = []string{"nats", "nats-name", "nats-replicas", "nats-partitions", "failover",
	"nats-creds", "nats-nkey", "nats-user", "nats-password", "nats-token", "nats-ca", "nats-cert", "nats-key"}

// natsOptions turns the flags into options of the connection.
func (cc *clusterConfig) natsOptions() ([]nats.Option, error) {
	var o []nats.Option
	if cc.creds != "" {
		o = append(o, nats.UserCredentials(cc.creds))
	}
	if cc.nkey != "" {
		opt, err := nats.NkeyOptionFromSeed(cc.nkey)
		if err != nil {
			return nil, fmt.Errorf("-nats-nkey: %w", err)
		}
		o = append(o, opt)
	}
	if cc.user != "" {
		o = append(o, nats.UserInfo(cc.user, cc.password))
	}
	if cc.token != "" {
		o = append(o, nats.Token(cc.token))
	}
	if cc.ca != "" {
		o = append(o, nats.RootCAs(cc.ca))
	}
	if (cc.cert == "") != (cc.key == "") {
		return nil, errors.New("-nats-cert and -nats-key go together")
	}
	if cc.cert != "" {
		o = append(o, nats.ClientCert(cc.cert, cc.key))
	}
	return o, nil
}

// markerLog is the change queue both sides use: the gateway appends, the
// engine reads and acknowledges.
type markerLog interface {
	Append(data []byte) (uint64, error)
	state.Log
}

// backend is where hookgate keeps its state: the embedded Badger database
// (one instance), or JetStream (a cluster).
type backend struct {
	log     markerLog
	pending state.Pending
	space   *store.Space       // the data disk's reserve; nil in cluster mode
	owner   delivery.Ownership // nil: this instance delivers every webhook
	health  func() error       // nil: nothing beyond the queue and the disk
	queued  func() uint64
	// registry loads the webhooks.
	registry func() (state.Registry, error)
	close    func() // once: later calls do nothing
	describe []any  // for the start's log line
}

// openBadger opens the embedded database of -data-dir.
func openBadger(c config, sealer *webhooks.Sealer, log *slog.Logger) (*backend, error) {
	db, err := store.Open(c.dataDir, store.Options{Logger: log})
	if err != nil {
		return nil, err
	}
	space := store.NewSpace(c.dataDir, c.minFreeDisk)
	metrics.NewGauge(`hookgate_disk_free_bytes`, func() float64 { _ = space.Check(); return float64(space.Free()) })
	q, err := queue.OpenBadger(db, queue.Options{
		Space:      space,
		Async:      c.durability == "async",
		MaxBacklog: uint64(c.maxBacklog),
		MaxPending: c.maxPending,
		OnCommit:   observeCommit,
		OnSync:     func(d time.Duration) { commitSync.Update(d.Seconds()) },
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return &backend{
		log: q, pending: store.NewPending(db, space), space: space, queued: q.Len,
		registry: func() (state.Registry, error) {
			hooks, err := webhooks.OpenSealedStore(db, sealer)
			if err != nil {
				return nil, err
			}
			hooks.SetSpace(space)
			return hooks, nil
		},
		close:    sync.OnceFunc(func() { q.Close(); db.Close() }),
		describe: []any{"data_dir", c.dataDir, "durability", c.durability},
	}, nil
}

// openCluster connects to JetStream and opens the marker log, to append
// to. Once the webhooks are loaded, the instance pulls from every
// partition and delivers those it is given: while it loads, it is given
// none.
func openCluster(c config, sealer *webhooks.Sealer, keyID string, log *slog.Logger) (*backend, error) {
	cc := c.cluster
	nopts, err := cc.natsOptions()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := cluster.Connect(ctx, cluster.Options{URLs: cc.urls, Name: cc.name, Replicas: cc.replicas, Sealer: sealer, KeyID: keyID, NATS: nopts,
		Grace: min(cc.failover, 5*time.Second)})
	if err != nil {
		return nil, err
	}
	m, err := conn.OpenMarkers(ctx, cluster.MarkersOptions{Partitions: cc.partitions, Failover: cc.failover, Later: true})
	if err != nil {
		conn.Close()
		return nil, err
	}
	var reg *cluster.Registry
	return &backend{
		log: m, pending: conn.Pending(), owner: m, health: conn.Healthy, queued: m.Len,
		registry: func() (state.Registry, error) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			var err error
			reg, err = conn.OpenRegistry(ctx)
			if err != nil {
				return nil, err
			}
			// The engine runs next.
			if err := m.Start(); err != nil {
				return nil, err
			}
			return reg, nil
		},
		close: sync.OnceFunc(func() {
			m.Close()
			if conn.Healthy() != nil {
				// No server answers: the watch's stop would wait for
				// one. Closing the connection ends it.
				conn.Close()
			}
			if reg != nil {
				reg.Close()
			}
			conn.Close()
		}),
		describe: []any{"nats", redactURLs(cc.urls), "nats_name", cc.name, "replicas", conn.Replicas(), "partitions", cc.partitions},
	}, nil
}

// redactURLs drops the user information of NATS URLs, for logs.
func redactURLs(urls string) string {
	var out []string
	for _, u := range splitList(urls) {
		if at := strings.LastIndex(u, "@"); at >= 0 {
			if i := strings.Index(u, "://"); i >= 0 && i < at {
				u = u[:i+3] + "…@" + u[at+1:]
			}
		}
		out = append(out, u)
	}
	return strings.Join(out, ",")
}
