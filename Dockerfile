# opsh as a service of the deployment's compose file, so the service names of its .env
# (postgres, qdrant, redis) resolve: see contrib/compose.opsh.yml and the README ("opsh in the
# stack").
#
#   docker build -t opsh .
#   docker build --build-arg RUST_IMAGE=registry.example/rust:1.95-slim-bookworm \
#                --build-arg RUNTIME_IMAGE=registry.example/debian:bookworm-slim -t opsh .
#
# Two stages. `build` compiles opsh with the Rust toolchain of RUST_IMAGE; `runtime` is the
# image that runs it: RUNTIME_IMAGE plus the binary and the build image's CA certificates
# (for https health URLs and TLS to the stores). Nothing is installed in it and nothing runs
# in it at build time, so any base with the glibc opsh was linked against will do: keep the
# two images on the same Debian release (bookworm and bookworm-slim by default).
# tests/image.rs builds this runtime stage on a base made from the host's own libraries.

ARG RUST_IMAGE=docker.io/library/rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=docker.io/library/debian:bookworm-slim

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin opsh \
    && mkdir -p /out \
    && cp target/release/opsh /out/opsh \
    && cp /etc/ssl/certs/ca-certificates.crt /out/ca-certificates.crt

FROM ${RUNTIME_IMAGE} AS runtime
COPY --from=build /out/opsh /usr/local/bin/opsh
COPY --from=build /out/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
# HOME holds opsh's state (audit log, the ids of bulk deletes, a reset's kept collection
# configuration): mount a volume there so it outlives `docker-compose run --rm`. /work is the
# working directory: opsh.toml, site scripts (./ops) and ./backups are found there as on a host.
ENV HOME=/var/lib/opsh \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
WORKDIR /var/lib/opsh
WORKDIR /work
LABEL org.opencontainers.image.title="opsh" \
      org.opencontainers.image.description="The operations shell of the youtube_agent deployment"
ENTRYPOINT ["/usr/local/bin/opsh"]
CMD ["scripts"]
