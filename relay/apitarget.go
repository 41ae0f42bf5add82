package relay

import (
	"crypto/x509"
	"errors"
	"log/slog"

	"github.com/mjrelay/mjrelay/mailjet"
	"github.com/mjrelay/mjrelay/relay/config"
)

func newAPITarget(cfg *config.Config, key string, secret config.Secret, roots *x509.CertPool, log *slog.Logger) (mailjet.Target, error) {
	return nil, errors.New("the api transport is not available yet")
}
