package relay

import (
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net/http"

	"github.com/mjrelay/mjrelay/mailjet"
	"github.com/mjrelay/mjrelay/mailjet/sendapi"
	"github.com/mjrelay/mjrelay/relay/config"
)

// newAPITarget builds the Send API v3.1 transport for one key pair.
func newAPITarget(cfg *config.Config, key string, secret config.Secret, roots *x509.CertPool, log *slog.Logger) (mailjet.Target, error) {
	c := sendapi.Config{
		BaseURL: cfg.Mailjet.APIURL, APIKey: key, SecretKey: secret.Reveal(),
		Timeout: cfg.Mailjet.Timeout.D(), Logger: log,
	}
	if roots != nil {
		c.HTTPClient = &http.Client{
			Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	return sendapi.New(c)
}
