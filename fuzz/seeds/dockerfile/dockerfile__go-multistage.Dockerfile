# syntax=docker/dockerfile:1.7
# Build a static Go binary for the target platform on the build platform.

ARG GO_VERSION=1.22
ARG DISTROLESS=gcr.io/distroless/static-debian12:nonroot

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-bookworm AS build
ARG TARGETOS TARGETARCH
WORKDIR /src
ENV CGO_ENABLED=0 \
    GOFLAGS="-trimpath -mod=readonly"
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -ldflags="-s -w" -o /out/server ./cmd/server

FROM build AS test
RUN go test ./...

FROM ${DISTROLESS}
LABEL org.opencontainers.image.source="https://example.com/server" \
      org.opencontainers.image.licenses=Apache-2.0
COPY --from=build --chmod=0755 /out/server /usr/local/bin/server
USER nonroot:nonroot
EXPOSE 8080/tcp 9090
ENTRYPOINT ["/usr/local/bin/server"]
CMD ["--listen", ":8080"]
