# hookgate: a static binary on a distroless base, run as a non-root user.
#   docker build -t hookgate .
#   docker run --stop-timeout 30 -p 8080:8080 -p 127.0.0.1:9090:9090 \
#     -v hookgate-data:/data -e HOOKGATE_UPSTREAM=api.internal:3000 hookgate
FROM golang:1.26.8-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/hookgate ./cmd/hookgate \
	&& mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/hookgate /usr/local/bin/hookgate
# The data directory must belong to the nonroot user (65532) for a new
# volume to be writable.
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
ENV HOOKGATE_LISTEN=:8080 \
	HOOKGATE_OPS_LISTEN=:9090 \
	HOOKGATE_DATA_DIR=/data \
	HOOKGATE_LOG_FORMAT=json
# The key that encrypts webhook signing secrets is, by default,
# /data/secrets.key, created at the first start: a copy of the volume then
# carries its key. To keep it apart, give it as a secret (64 hex digits,
# readable by user 65532) and point hookgate at it:
#   openssl rand -hex 32 > hookgate_secrets_key
#   docker secret create hookgate_secrets_key hookgate_secrets_key
#   docker service create --secret hookgate_secrets_key \
#     -e HOOKGATE_SECRETS_KEY_FILE=/run/secrets/hookgate_secrets_key ... hookgate
# (Compose: a top-level secrets: entry and secrets: [hookgate_secrets_key]
# on the service; plain docker run: -v "$PWD/hookgate_secrets_key:/run/secrets/hookgate_secrets_key:ro".)
# It is not set here: once set, the file must exist (hookgate cannot create
# it under /run/secrets and stops), and a plain docker run has no secret.
# ENV HOOKGATE_SECRETS_KEY_FILE=/run/secrets/hookgate_secrets_key
VOLUME /data
EXPOSE 8080 9090
# SIGTERM drains for -shutdown-timeout (15 s): give docker stop more
# (--stop-timeout 30, as above).
STOPSIGNAL SIGTERM
# Ready: /readyz on -ops-listen answers 200 (no shell in the image).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
	CMD ["/usr/local/bin/hookgate", "-healthcheck"]
ENTRYPOINT ["/usr/local/bin/hookgate"]
