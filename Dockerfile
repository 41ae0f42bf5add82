# mjrelay: an SMTP relay between Odoo and Mailjet, as a static binary on
# distroless (non-root, uid 65532). The configuration is dist/docker.toml,
# read from /etc/mjrelay/mjrelay.toml; these environment variables adjust it:
#
#   MJ_APIKEY_PUBLIC, MJ_APIKEY_PRIVATE   Mailjet keys (without them: sandbox
#                                  mode, mail is recorded and never sent)
#   MJRELAY_SMTP_USER              the login Odoo uses, with its password in
#   MJRELAY_SMTP_PASSWORD            plain (bcrypt-hashed at start, never logged)
#   MJRELAY_SMTP_PASSWORD_HASH       or as a hash from `mjrelay hash-password`
#   MJRELAY_TRUSTED_NETWORKS       addresses/CIDRs that may send without a
#                                  login, comma-separated (default: none)
#   MJRELAY_HTTP_LISTEN            the web UI's address (default 127.0.0.1:8025,
#                                  inside the container only); 0.0.0.0:8025 needs
#   MJRELAY_HTTP_USER              a web UI login, with
#   MJRELAY_HTTP_PASSWORD            its password or
#   MJRELAY_HTTP_PASSWORD_HASH       its bcrypt hash
#   MJRELAY_SMTP_LISTEN, MJRELAY_SMTP_LISTEN_TLS, MJRELAY_DATA_DIR
#                                  (defaults 0.0.0.0:2525, 0.0.0.0:2465, /data)
# Anything else: mount a config of your own over /etc/mjrelay/mjrelay.toml.
#
# Build: docker build -t mjrelay .   (--build-arg VERSION=v1.2.3 for a release)
# Run:   docker run -d --name mjrelay -p 2525:2525 -p 2465:2465 -p 8025:8025 \
#          -v mjrelay-data:/data \
#          -e MJ_APIKEY_PUBLIC=... -e MJ_APIKEY_PRIVATE=... \
#          -e MJRELAY_SMTP_USER=odoo -e MJRELAY_SMTP_PASSWORD='a-long-random-password' \
#          -e MJRELAY_HTTP_LISTEN=0.0.0.0:8025 \
#          -e MJRELAY_HTTP_USER=admin -e MJRELAY_HTTP_PASSWORD='another-password' \
#          mjrelay
# Then in Odoo: the relay's host, port 2525 with "TLS (STARTTLS)" (or 2465 with
# "SSL/TLS"), username odoo and its password. Web UI: http://localhost:8025/.
# Commands run in the container see the same configuration:
#   docker exec mjrelay mjrelay log
#   docker exec mjrelay mjrelay queue list
# As PID 1 the relay is its own init: it runs the relay server as its child,
# forwards signals to it and stays up when a restart replaces it, so these
# refuse no connection:
#   docker kill -s HUP mjrelay               reload the configuration
#   docker kill -s USR2 mjrelay              restart in place (or: docker exec
#                                            mjrelay mjrelay restart)
#   docker stop -t 45 mjrelay                SIGTERM: sessions finish (30 s)
# With another init as PID 1 (docker run --init), set MJRELAY_INIT=1.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
COPY third_party ./third_party
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/mjrelay ./cmd/mjrelay \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/mjrelay /usr/local/bin/mjrelay
COPY dist/docker.toml /etc/mjrelay/mjrelay.toml
COPY --from=build --chown=65532:65532 /out/data /data
ENV MJRELAY_CONFIG=/etc/mjrelay/mjrelay.toml
USER 65532:65532
VOLUME /data
EXPOSE 2525 2465 8025
ENTRYPOINT ["/usr/local/bin/mjrelay"]
CMD ["serve", "--config", "/etc/mjrelay/mjrelay.toml"]
