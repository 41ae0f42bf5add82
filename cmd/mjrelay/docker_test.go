package main

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// repoRoot is the repository, seen from this package's directory.
const repoRoot = "../.."

// dockerImage is what the Dockerfile says about the container it builds.
type dockerImage struct {
	stages     []string          // each stage's FROM image
	build      string            // the instructions of the stages before the last
	copies     map[string]string // final stage: destination → source in the build context
	env        []string          // final stage's ENV, as KEY=VALUE
	user       string
	expose     []string
	entrypoint []string
	cmd        []string
}

// readDockerfile parses the instructions this test relies on.
func readDockerfile(t *testing.T, path string) *dockerImage {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	img := &dockerImage{copies: map[string]string{}}
	var build strings.Builder
	text := strings.ReplaceAll(string(data), "\\\n", " ")
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		instr, args := strings.ToUpper(f[0]), f[1:]
		if instr == "FROM" {
			img.stages = append(img.stages, args[0])
			img.copies, img.env, img.user, img.expose = map[string]string{}, nil, "", nil
			continue
		}
		if len(img.stages) == 0 {
			t.Fatalf("%s: %s before FROM", path, instr)
		}
		build.WriteString(line + "\n")
		rest := strings.TrimSpace(line[len(f[0]):])
		switch instr {
		case "COPY":
			if slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--from") }) {
				continue
			}
			args = slices.DeleteFunc(args, func(a string) bool { return strings.HasPrefix(a, "--") })
			if len(args) == 2 {
				img.copies[args[1]] = args[0]
			}
		case "ENV":
			img.env = append(img.env, args...)
		case "USER":
			img.user = args[0]
		case "EXPOSE":
			img.expose = args
		case "ENTRYPOINT", "CMD":
			var v []string
			if err := json.Unmarshal([]byte(rest), &v); err != nil {
				t.Fatalf("%s: %s is not in exec (JSON) form: %v", path, instr, err)
			}
			if instr == "CMD" {
				img.cmd = v
			} else {
				img.entrypoint = v
			}
		}
	}
	if len(img.stages) > 1 {
		img.build = build.String()
	}
	return img
}

// local maps a path inside the image to the file it was copied from.
func (img *dockerImage) local(v string) string {
	if src, ok := img.copies[v]; ok {
		return filepath.Join(repoRoot, src)
	}
	return v
}

// TestDockerImage checks the Dockerfile's shape: a multi-stage build of a
// static binary onto distroless, run as non-root, configured by a file
// of the repository.
func TestDockerImage(t *testing.T) {
	img := readDockerfile(t, filepath.Join(repoRoot, "Dockerfile"))
	final := img.stages[len(img.stages)-1]
	switch {
	case len(img.stages) < 2:
		t.Errorf("not a multi-stage build: %v", img.stages)
	case !strings.HasPrefix(final, "gcr.io/distroless/static") || !strings.HasSuffix(final, ":nonroot"):
		t.Errorf("final image %s is not distroless static nonroot", final)
	case !strings.Contains(img.build, "CGO_ENABLED=0"):
		t.Error("the binary is not built with CGO_ENABLED=0 (static)")
	case img.user != "65532:65532" && img.user != "nonroot":
		t.Errorf("USER %q: not the distroless nonroot user", img.user)
	case !slices.Equal(img.entrypoint, []string{"/usr/local/bin/mjrelay"}):
		t.Errorf("ENTRYPOINT %v", img.entrypoint)
	}
	cfgFile := dockerConfig(t, img)
	cfg, _, err := loadConfigEnv(cfgFile, noEnv)
	if err != nil {
		t.Fatalf("the image's config: %v", err)
	}
	var ports []string
	for _, a := range []string{cfg.SMTP.Listen, cfg.SMTP.ListenTLS, cfg.HTTP.Listen} {
		_, port, _ := net.SplitHostPort(a)
		ports = append(ports, port)
	}
	if !slices.Equal(ports, img.expose) {
		t.Errorf("EXPOSE %v, but the config listens on ports %v", img.expose, ports)
	}
}

// dockerConfig returns the repository file the image's CMD runs with.
func dockerConfig(t *testing.T, img *dockerImage) string {
	t.Helper()
	i := slices.Index(img.cmd, "--config")
	if len(img.cmd) == 0 || img.cmd[0] != "serve" || i < 0 || i+1 >= len(img.cmd) {
		t.Fatalf("CMD %v is not serve --config FILE", img.cmd)
	}
	src := img.local(img.cmd[i+1])
	if src == img.cmd[i+1] {
		t.Fatalf("the image's config %s is not copied from the repository (it must be testable without Docker)", img.cmd[i+1])
	}
	return src
}

func noEnv(string) (string, bool) { return "", false }

// TestDockerImageConfig runs the relay the way the image does — its
// entrypoint and command, its config file, its ENV and the variables the
// Dockerfile documents for `docker run` — with only the listen addresses
// and data_dir moved by those same variables to 127.0.0.1 and a temporary
// directory. Odoo's login works over STARTTLS and implicit TLS, mail is
// accepted (and sandboxed: no Mailjet keys), nothing else may send, the
// web UI asks for its login, and `docker exec mjrelay mjrelay log` sees
// the same configuration.
func TestDockerImageConfig(t *testing.T) {
	img := readDockerfile(t, filepath.Join(repoRoot, "Dockerfile"))
	cfgFile := dockerConfig(t, img)

	t.Run("starts with no variables", func(t *testing.T) {
		cfg, _, err := loadConfigEnv(cfgFile, noEnv)
		if err != nil {
			t.Fatalf("the image would exit at start: %v", err)
		}
		if !cfg.Sandbox() || len(cfg.SMTP.TrustedNetworks) != 0 || len(cfg.SMTP.Users) != 0 {
			t.Errorf("bare image: sandbox %v, trusted %v, %d users; want sandbox, nothing trusted, no users",
				cfg.Sandbox(), cfg.SMTP.TrustedNetworks, len(cfg.SMTP.Users))
		}
	})
	t.Run("web UI published without a login is refused", func(t *testing.T) {
		_, _, err := loadConfigEnv(cfgFile, envMap(map[string]string{"MJRELAY_HTTP_LISTEN": "0.0.0.0:8025"}))
		if err == nil || !strings.Contains(err.Error(), "http.users") {
			t.Fatalf("got %v, want the http.users validation error", err)
		}
	})

	const odooPassword, adminPassword = "odoo-docker-Pw-1", "admin-docker-Pw-2"
	env := []string{
		// As documented for docker run.
		"MJRELAY_SMTP_USER=odoo", "MJRELAY_SMTP_PASSWORD=" + odooPassword,
		"MJRELAY_HTTP_USER=admin", "MJRELAY_HTTP_PASSWORD=" + adminPassword,
		// The container's addresses and volume, here.
		"MJRELAY_DATA_DIR=" + filepath.Join(t.TempDir(), "data"),
		"MJRELAY_SMTP_LISTEN=127.0.0.1:0", "MJRELAY_SMTP_LISTEN_TLS=127.0.0.1:0", "MJRELAY_HTTP_LISTEN=127.0.0.1:0",
	}
	for _, kv := range img.env {
		k, v, _ := strings.Cut(kv, "=")
		env = append(env, k+"="+img.local(v))
	}
	command := func(args ...string) *exec.Cmd {
		for i, a := range args {
			args[i] = img.local(a)
		}
		cmd := exec.Command(binary, args...)
		cmd.Env = env
		return cmd
	}
	p := startProc(t, command(img.cmd...), 2)
	p.mu.Lock()
	plain, implicit := p.smtp[0], p.smtp[1]
	p.mu.Unlock()
	insecure := &tls.Config{InsecureSkipVerify: true} // as Odoo 17/18: the generated certificate is not verified

	startTLS, err := smtp.DialStartTLS(plain, insecure)
	if err != nil {
		t.Fatal(err)
	}
	dockerSend(t, startTLS, sasl.NewPlainClient("", "odoo", odooPassword), "via STARTTLS")
	implicitTLS, err := smtp.DialTLS(implicit, insecure)
	if err != nil {
		t.Fatal(err)
	}
	dockerSend(t, implicitTLS, sasl.NewLoginClient("odoo", odooPassword), "via SMTPS")

	// Nobody sends without the login.
	anon, err := smtp.DialStartTLS(plain, insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := anon.Mail("bounce@example.com", nil); err == nil || !strings.Contains(err.Error(), "530") {
		t.Errorf("MAIL without a login: %v, want 530", err)
	}
	anon.Close()

	// The web UI wants its login, and shows both messages with it.
	web := p.web(t)
	resp, err := http.Get("http://" + web + "/api/messages")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("web UI without its login: %s, want 401", resp.Status)
	}
	waitUntil(t, "both messages in the web UI", 10*time.Second, func() bool {
		body := string(get(t, "http://admin:"+adminPassword+"@"+web+"/api/messages"))
		return strings.Contains(body, "via STARTTLS") && strings.Contains(body, "via SMTPS")
	})

	// docker exec mjrelay mjrelay log: the same configuration, from MJRELAY_CONFIG.
	out, err := command("log").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "via SMTPS") {
		t.Errorf("mjrelay log in the container: %v\n%s", err, out)
	}
	if log := p.log(); strings.Contains(log, odooPassword) || strings.Contains(log, adminPassword) {
		t.Errorf("a password from the environment is in the process log:\n%s", log)
	}
}

// dockerSend logs in with auth and sends one message with that subject.
func dockerSend(t *testing.T, c *smtp.Client, auth sasl.Client, subject string) {
	t.Helper()
	defer c.Close()
	if err := c.Auth(auth); err != nil {
		t.Fatalf("%s: login: %v", subject, err)
	}
	msg := fmt.Sprintf("From: john@example.com\r\nTo: client@example.org\r\nSubject: %s\r\n\r\nhello\r\n", subject)
	if err := c.SendMail("bounce@example.com", []string{"client@example.org"}, strings.NewReader(msg)); err != nil {
		t.Fatalf("%s: %v", subject, err)
	}
	c.Quit()
}

func envMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}
