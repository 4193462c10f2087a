package cluster

import (
	"time"

	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// ConnectionOptions tune the connections to workload clusters.
type ConnectionOptions struct {
	// QPS and Burst limit each cluster's client; UserAgent names it.
	QPS       float32
	Burst     int
	UserAgent string
	// Timeout bounds each request but watches (default 10 s).
	Timeout time.Duration
	// ProbeInterval is how often a connected cluster is probed (default
	// 10 s), ProbeTimeout how long a probe may take (default 5 s),
	// FailureThreshold how many failed probes in a row drop the
	// connection (default 5), and RetryInterval how long after a failed
	// connection the next is tried (default 30 s).
	ProbeInterval, ProbeTimeout, RetryInterval time.Duration
	FailureThreshold                           int
	// Transform shrinks the cached objects; Indexes index the cache.
	Transform toolscache.TransformFunc
	Indexes   []Index
	// Uncached are the kinds always read live.
	Uncached []client.Object
}

// Index is a field index of a workload cluster's cache.
type Index struct {
	Object  client.Object
	Field   string
	Extract client.IndexerFunc
}

func (o *ConnectionOptions) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&o.Timeout, 10*time.Second)
	def(&o.ProbeInterval, 10*time.Second)
	def(&o.ProbeTimeout, 5*time.Second)
	def(&o.RetryInterval, 30*time.Second)
	if o.FailureThreshold == 0 {
		o.FailureThreshold = 5
	}
}
