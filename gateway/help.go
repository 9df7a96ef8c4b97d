package gateway

import (
	"bytes"
	"io"
)

// metricHelp is the # HELP text of each hookgate family: the metrics
// package writes the line (ExposeMetadata) but has no text for it.
var metricHelp = map[string]string{
	"hookgate_build_info":                        "Always 1; the labels say which hookgate runs.",
	"hookgate_proxy_requests_total":              "Proxied requests, by class (read, change, batch) and upstream status class.",
	"hookgate_upstream_errors_total":             "Upstream exchanges answered by hookgate with 502/503 (unavailable) or 504 (timeout).",
	"hookgate_upstream_stale_retries_total":      "Requests sent again on a new connection after the upstream closed the pooled one under them.",
	"hookgate_upstream_duration_seconds":         "Time of one upstream exchange.",
	"hookgate_markers_written_total":             "Change markers written durably to the queue.",
	"hookgate_marker_errors_total":               "Changes answered to the client whose marker could not be written: their notification may be missing.",
	"hookgate_classify_body_too_large_total":     "Batch or form bodies over -max-classify-body, refused with 413.",
	"hookgate_queue_depth":                       "Change markers written and not yet acknowledged by the delivery engine.",
	"hookgate_queue_commit_records":              "Markers per group commit (one fsync each).",
	"hookgate_queue_sync_duration_seconds":       "Time of each sync of the marker log to disk: the wait of every change in its group commit (default durability), or of the periodic sync (async).",
	"hookgate_queue_commit_errors_total":         "Group commits of the change queue that failed.",
	"hookgate_cluster_partitions_owned":          "Cluster mode: partitions of the users this instance delivers now.",
	"hookgate_cluster_partition_owned":           "Cluster mode: 1 while this instance delivers the users of this partition.",
	"hookgate_cluster_partitions_gained_total":   "Cluster mode: partitions this instance took up (at start, from a dead instance, or given up by another).",
	"hookgate_cluster_partitions_lost_total":     "Cluster mode: partitions this instance stopped delivering (given up for another instance, or its anchor late); what it had read of them, its next owner reads again.",
	"hookgate_cluster_markers_unpublished_total": "Cluster mode: changes answered whose marker JetStream did not take (no quorum); their notifications may be missing.",
	"hookgate_cluster_markers_republished_total": "Cluster mode: marker publishes made again after the connection moved to another server or no stream leader answered; such a marker may be stored, and notified, twice.",
	"hookgate_disk_free_bytes":                   "Free space on the data directory's disk.",
	"hookgate_markers_dispatched_total":          "Change markers read by the delivery engine.",
	"hookgate_webhook_changes_total":             "Changes that reached a webhook (one marker reaching three webhooks counts three).",
	"hookgate_deliveries_total":                  "Notification POSTs, by outcome: success (2xx), gone (410), failure (anything else, or no answer).",
	"hookgate_delivery_duration_seconds":         "Time of one notification POST.",
	"hookgate_notification_latency_seconds":      "From a change accepted to its notification answered, rate windows included.",
	"hookgate_webhook_deactivations_total":       "Webhooks turned inactive by delivery: maxRetries failures in a row, 410 Gone, or their access deleted.",
	"hookgate_delivery_pool_running":             "Deliveries being sent now.",
	"hookgate_delivery_pool_free":                "Room left in the delivery pool.",
	"hookgate_webhooks":                          "Webhooks stored, by state.",
	"hookgate_delivery_slots_pruned_total":       "Delivery slots of idle webhooks forgotten to save memory.",
	"hookgate_deliveries_parked_total":           "Deliveries that waited in the engine for a free connection to their receiver's host.",
	"hookgate_websocket_connections":             "WebSocket connections passed to the upstream, open now.",
	"hookgate_websocket_upgrades_total":          "WebSocket upgrades the upstream accepted (101) and hookgate spliced.",
	"hookgate_websocket_refused_total":           "WebSocket upgrades refused with 503: -max-websockets were open.",
	"hookgate_websocket_bytes_total":             "Bytes passed on upgraded connections, by direction: upstream (from clients) or client (from the upstream).",
	"hookgate_websocket_unreadable_total":        "WebSocket connection directions whose bytes stopped reading as frames; passed on unread from there.",
	"hookgate_websocket_frames_total":            "WebSocket frames read as they passed, both directions.",
	"hookgate_socketio_packets_total":            "socket.io packets read on WebSocket connections, both directions.",
	"hookgate_socketio_unparsed_total":           "Engine.IO messages that were not readable socket.io packets; passed on untouched.",
	"hookgate_socketio_changes_total":            "socket.io method calls acknowledged without error that change data, recorded as changes.",
	"hookgate_delivery_errors_total":             "Failed notification POSTs, by class: timeout, refused, dns, tls, blocked, http (an answer outside 200-299), bad-answer, connection.",
	"hookgate_engine_panics_total":               "Panics the delivery engine recovered from: a bug.",
}

// helpWriter passes the Prometheus text through, filling the empty
// # HELP lines of hookgate's families from metricHelp. Every family of
// the metrics package's output comes whole in one Write call or more,
// line by line; partial lines are held until their end.
type helpWriter struct {
	w    io.Writer
	line []byte
}

func (h *helpWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			h.line = append(h.line, p...)
			break
		}
		h.line = append(h.line, p[:i+1]...)
		p = p[i+1:]
		if err := h.flushLine(); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// Flush writes a last line that had no newline.
func (h *helpWriter) Flush() error {
	if len(h.line) == 0 {
		return nil
	}
	return h.flushLine()
}

func (h *helpWriter) flushLine() error {
	line := h.line
	h.line = h.line[:0]
	if name, ok := bytes.CutPrefix(bytes.TrimSuffix(line, []byte{'\n'}), []byte("# HELP ")); ok {
		if text, ok := metricHelp[string(name)]; ok {
			_, err := io.WriteString(h.w, "# HELP "+string(name)+" "+text+"\n")
			return err
		}
	}
	_, err := h.w.Write(line)
	return err
}
