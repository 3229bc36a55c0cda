# Routr v2 Registry (Go), a drop-in for Routr's Registry container.
# Build: docker build -t sipreg/registry .
FROM golang:1.26-bookworm AS build
WORKDIR /src
# The registry module builds on its own (GOWORK=off) through its replace of ../../gen.
COPY gen/ gen/
COPY services/registry/ services/registry/
ARG VERSION=dev
RUN cd services/registry && GOWORK=off CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION}" -o /out/registry ./cmd/registry

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/registry /usr/local/bin/registry
ENV CONFIG_PATH=/etc/routr/registry.yaml
# 51910: control API (Connect, gRPC, gRPC-Web); 8080: /healthz and /metrics.
EXPOSE 51910 8080
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/registry"]
