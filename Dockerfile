# pinroll's container image (SPEC §8): one image serves every Cloud Run
# function target, picked by $FUNCTION_TARGET (OnImagePushed,
# OnGitHubWebhook, Squash, Ops). The pinroll CLI rides along for
# `pinroll serve` or `pinroll watch` outside Cloud Run:
#   docker run --entrypoint /usr/local/bin/pinroll IMAGE watch --subscription ...
# Build: make image (needs a Docker engine), or gcloud builds submit.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
WORKDIR /src
# Modules first, so a source change reuses the download layer.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# Static binaries: no cgo, nothing to link at run time.
ENV CGO_ENABLED=0
RUN go build -trimpath -ldflags="-s -w" -o /out/function ./cmd/function \
 && go build -trimpath -ldflags="-s -w" -o /out/pinroll ./cmd/pinroll

# distroless static: CA certificates and tzdata, no shell, no package manager;
# the nonroot tag runs as uid 65532.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/function /out/pinroll /usr/local/bin/
USER nonroot:nonroot
ENV PORT=8080
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/function"]
