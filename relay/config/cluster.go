package config

import (
	"net/url"
	"strings"
	"time"
)

// validateCluster checks [cluster] (only when postgres_url is set).
func (c *Config) validateCluster(bad func(key, format string, args ...any)) {
	cl := c.Cluster
	if cl.PostgresURL == "" {
		return
	}
	u := cl.PostgresURL.Reveal()
	switch {
	case strings.HasPrefix(u, "postgres://") || strings.HasPrefix(u, "postgresql://"):
		if p, err := url.Parse(u); err != nil || p.Host == "" {
			bad("cluster.postgres_url", "is not a postgres://user@host/database URL")
		}
	case strings.Contains(u, "="):
		// key=value connection string: pgx checks it when it connects.
	default:
		bad("cluster.postgres_url", "is not a postgres://user@host/database URL or a key=value connection string")
	}
	if cl.NodeName == "" || len(cl.NodeName) > 63 || strings.ContainsAny(cl.NodeName, " \t\r\n/") {
		bad("cluster.node_name", "%q must be 1-63 characters without spaces or slashes (default: the host name)", cl.NodeName)
	}
	if cl.Lease < Duration(time.Second) || cl.Lease > Duration(time.Hour) {
		bad("cluster.lease", "%s is not between 1s and 1h", time.Duration(cl.Lease))
	}
}
