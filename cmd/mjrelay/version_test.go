package main

import (
	"debug/buildinfo"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func TestBuildString(t *testing.T) {
	const rev = "9d3e208b1572f47079567b71f754bf243f3febb1"
	vcs := func(modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev},
			{Key: "vcs.time", Value: "2026-11-24T15:35:13Z"}, {Key: "vcs.modified", Value: modified}}
	}
	tests := []struct {
		name    string
		release string
		bi      *debug.BuildInfo
		want    string
	}{
		{"module version from a clone", "dev",
			&debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-20261124153513-9d3e208b1572"}, Settings: vcs("false")},
			"mjrelay v0.0.0-20261124153513-9d3e208b1572 (revision " + rev + ", 2026-11-24T15:35:13Z, go1.26.8)"},
		{"uncommitted changes", "dev",
			&debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-20261124153513-9d3e208b1572+dirty"}, Settings: vcs("true")},
			"mjrelay v0.0.0-20261124153513-9d3e208b1572+dirty (revision " + rev + ", 2026-11-24T15:35:13Z, modified, go1.26.8)"},
		{"release build keeps -X main.version", "v1.2.3",
			&debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: vcs("false")},
			"mjrelay v1.2.3 (revision " + rev + ", 2026-11-24T15:35:13Z, go1.26.8)"},
		{"no VCS information", "dev",
			&debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}},
			"mjrelay (devel) (go1.26.8)"},
		{"no build information", "dev", nil, "mjrelay dev"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := buildOf(tc.release, tc.bi).String(); got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

// TestVersionCommand checks `mjrelay version` and `--version` against what
// Go recorded in the binary, and that -X main.version still names a
// release.
func TestVersionCommand(t *testing.T) {
	bi, err := buildinfo.ReadFile(binary)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"mjrelay " + bi.Main.Version, bi.GoVersion}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" || s.Key == "vcs.time" {
			want = append(want, s.Value)
		}
	}
	for _, arg := range []string{"version", "--version"} {
		out, code := runCLI(t, arg)
		for _, w := range want {
			if code != 0 || !strings.Contains(out, w) {
				t.Errorf("mjrelay %s: exit %d, %q does not say %q", arg, code, out, w)
			}
		}
	}

	release := filepath.Join(t.TempDir(), "mjrelay")
	if out, err := exec.Command("go", "build", "-ldflags", "-X main.version=v1.2.3", "-o", release, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(release, "--version").Output()
	if err != nil || !strings.HasPrefix(string(out), "mjrelay v1.2.3 (") {
		t.Errorf("release build: %q, %v; want mjrelay v1.2.3 (…)", out, err)
	}
}
