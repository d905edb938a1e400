# rookery's container image: a cached dependency build (cargo-chef), then a small runtime image
# running as a non-root user. `docker build -t rookery .`
FROM rust:1.95-bookworm AS chef
RUN cargo install cargo-chef --locked
WORKDIR /app

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
# Dependencies only: this layer is reused until Cargo.toml or Cargo.lock change.
COPY --from=planner /app/recipe.json recipe.json
RUN cargo chef cook --release --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked --bin rookery

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /app/target/release/rookery /rookery
ENV ROOKERY_BIND=0.0.0.0:8080 \
    ROOKERY_LOG_FORMAT=json
EXPOSE 8080
USER nonroot
# No shell or curl in the image: the binary probes itself.
HEALTHCHECK --interval=5s --timeout=3s --start-period=5s --retries=3 CMD ["/rookery", "healthcheck"]
ENTRYPOINT ["/rookery"]
