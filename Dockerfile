# Build: docker build -t mjrelay .
# Run:   docker run -p 2525:2525 -p 2465:2465 -v mjrelay-data:/data \
#          -e MJ_APIKEY_PUBLIC=... -e MJ_APIKEY_PRIVATE=... mjrelay
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
COPY third_party ./third_party
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/mjrelay ./cmd/mjrelay \
 && mkdir -p /out/data && sed \
      -e 's|^data_dir = .*|data_dir = "/data"|' \
      -e 's|^listen = "127.0.0.1:2525"|listen = "0.0.0.0:2525"|' \
      -e 's|^listen_tls = .*|listen_tls = "0.0.0.0:2465"|' \
      -e 's|^listen = "127.0.0.1:8025"|listen = "0.0.0.0:8025"|' \
      -e 's|^trusted_networks = .*|trusted_networks = []|' \
      config.example.toml > /out/mjrelay.toml

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/mjrelay /usr/local/bin/mjrelay
COPY --from=build /out/mjrelay.toml /etc/mjrelay/mjrelay.toml
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
VOLUME /data
EXPOSE 2525 2465 8025
ENTRYPOINT ["/usr/local/bin/mjrelay"]
CMD ["serve", "--config", "/etc/mjrelay/mjrelay.toml"]
