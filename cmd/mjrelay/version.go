package main

import (
	"fmt"
	"runtime/debug"
	"strings"
)

// build describes the running binary: its version and where it was built
// from.
type build struct {
	Version  string // a release version, the module version, or "(devel)"
	Revision string // vcs.revision: the commit built, "" when unknown
	Time     string // vcs.time: the commit's time
	Modified bool   // vcs.modified: the tree had uncommitted changes
	Go       string // the Go toolchain
}

// buildOf reads the build description. release is main.version, set for
// release builds with -ldflags "-X main.version=v1.2.3"; when it is
// "dev" (not set), the module version Go recorded is used. bi is what
// runtime/debug.ReadBuildInfo returned (nil when it had nothing).
func buildOf(release string, bi *debug.BuildInfo) build {
	b := build{Version: release}
	if bi == nil {
		return b
	}
	if release == "" || release == "dev" {
		b.Version = bi.Main.Version
	}
	if b.Version == "" {
		b.Version = "(devel)"
	}
	b.Go = bi.GoVersion
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.time":
			b.Time = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

// currentBuild describes this process's binary.
func currentBuild() build {
	bi, _ := debug.ReadBuildInfo()
	return buildOf(version, bi)
}

// String is what `mjrelay version` prints, e.g.
// "mjrelay v1.2.3 (revision 0a1b…, 2026-11-24T10:00:00Z, modified, go1.26.8)".
func (b build) String() string {
	var parts []string
	if b.Revision != "" {
		parts = append(parts, "revision "+b.Revision)
	}
	if b.Time != "" {
		parts = append(parts, b.Time)
	}
	if b.Modified {
		parts = append(parts, "modified")
	}
	if b.Go != "" {
		parts = append(parts, b.Go)
	}
	if len(parts) == 0 {
		return "mjrelay " + b.Version
	}
	return fmt.Sprintf("mjrelay %s (%s)", b.Version, strings.Join(parts, ", "))
}
