package core

// LatencyBuckets are the upper bounds, in seconds, of hookgate's latency
// histograms (upstream exchanges, deliveries, change to notification):
// 100 µs to 30 s, so that Prometheus' histogram_quantile has resolution
// where a proxy's latencies fall.
var LatencyBuckets = []float64{
	0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
	0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
}

// CountBuckets are the upper bounds of histograms of counts, such as the
// change markers written by one queue commit.
var CountBuckets = []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}
