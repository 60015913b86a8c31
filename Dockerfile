# Builds referrald and referralctl into a small image. Docker does not run on the team's
# machines; this file documents the production-like setup (see docker-compose.yml).
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/referrald ./cmd/referrald \
 && CGO_ENABLED=0 go build -trimpath -o /out/referralctl ./cmd/referralctl \
 && mkdir -m 0700 /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/referrald /out/referralctl /usr/local/bin/
# The data dir belongs to nonroot (65532): a new named volume mounted there takes its owner,
# so the service can create its files (Docker would otherwise make the mount point root's).
COPY --from=build --chown=65532:65532 /out/data /data
USER nonroot
VOLUME /data
ENV REFERRAL_ADDR=0.0.0.0:8080 REFERRAL_DATA_DIR=/data
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/referrald"]
