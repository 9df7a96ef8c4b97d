package gateway

import (
	"github.com/VictoriaMetrics/metrics"

	"github.com/hookgate/hookgate/core"
)

// Request classes, for hookgate_proxy_requests_total.
const (
	classRead = iota
	classChange
	classBatch
	numClasses
)

var classNames = [numClasses]string{"read", "change", "batch"}

// proxyRequests[class][status/100] counts proxied requests by class and
// upstream status class; created once, so the hot path only calls Inc.
var proxyRequests = func() (c [numClasses][6]*metrics.Counter) {
	for i, cl := range classNames {
		for s := 1; s <= 5; s++ {
			c[i][s] = metrics.NewCounter(`hookgate_proxy_requests_total{class="` + cl + `",status="` + string(rune('0'+s)) + `xx"}`)
		}
	}
	return c
}()

var (
	upstreamUnavailable = metrics.NewCounter(`hookgate_upstream_errors_total{reason="unavailable"}`)
	upstreamTimeout     = metrics.NewCounter(`hookgate_upstream_errors_total{reason="timeout"}`)
	// upstreamStaleRetries counts requests sent again on a new connection
	// after the upstream had closed the pooled one under them (upconn.go).
	upstreamStaleRetries = metrics.NewCounter(`hookgate_upstream_stale_retries_total`)
	upstreamDuration     = metrics.NewPrometheusHistogramExt(`hookgate_upstream_duration_seconds`, core.LatencyBuckets)
	markersWritten       = metrics.NewCounter(`hookgate_markers_written_total`)
	markerErrors         = metrics.NewCounter(`hookgate_marker_errors_total`)
	tooLarge             = metrics.NewCounter(`hookgate_classify_body_too_large_total`)
)
