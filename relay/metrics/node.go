package metrics

import "github.com/prometheus/client_golang/prometheus"

// nodeCollector reads a cluster node's local hold at scrape time.
type nodeCollector struct{ n Node }

var (
	descHeldLocally = prometheus.NewDesc("mjrelay_cluster_held_locally",
		"Messages this node holds in its local spool (accepted while PostgreSQL was unreachable, moved in when it is back).", nil, nil)
	descDegraded = prometheus.NewDesc("mjrelay_cluster_degraded",
		"1 while PostgreSQL is unreachable and this node holds new mail locally.", nil, nil)
)

func (c *nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descHeldLocally
	ch <- descDegraded
}

func (c *nodeCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(descHeldLocally, prometheus.GaugeValue, float64(c.n.HeldLocally()))
	deg := 0.0
	if d, _ := c.n.Degraded(); d {
		deg = 1
	}
	ch <- prometheus.MustNewConstMetric(descDegraded, prometheus.GaugeValue, deg)
}
