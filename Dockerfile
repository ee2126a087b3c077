# syntax=docker/dockerfile:1
# fleetstream: one image for every deployable (`fleet run <processor>`) and the CLI (`fleet ...`).
#
#   docker build -t fleetstream/fleetstream:0.1.0 .
#   docker run --rm fleetstream/fleetstream:0.1.0 run --help
#
# The builder turns the source into a wheel and installs it with its dependencies into a virtualenv
# at /opt/venv; the runtime copies only that virtualenv onto a slim Python and runs as user 10001
# (the chart's podSecurityContext). The root filesystem can be read-only: state goes to
# FLEET_STATE_DIR, a volume.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY topologies ./topologies
COPY sinks ./sinks
COPY pipelines ./pipelines
COPY gateway ./gateway
RUN /opt/venv/bin/pip wheel --no-deps --wheel-dir /wheels . \
 && /opt/venv/bin/pip install /wheels/fleetstream-*.whl \
 && /opt/venv/bin/python -m compileall -q /opt/venv/lib \
 && /opt/venv/bin/fleet --help > /dev/null

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="fleetstream" \
      org.opencontainers.image.description="Kafka-native backend for warehouse robot fleets" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 fleet \
 && useradd --system --uid 10001 --gid fleet --home-dir /home/fleet --create-home \
      --shell /usr/sbin/nologin fleet \
 && mkdir -p /var/lib/fleetstream/state \
 && chown -R 10001:10001 /var/lib/fleetstream
COPY --from=builder /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    FLEET_LOG_FORMAT=json \
    FLEET_STATE_DIR=/var/lib/fleetstream/state
WORKDIR /home/fleet
USER 10001:10001
# 8080: the gateway's HTTP port; 9400: a processor's /metrics (FLEET_METRICS_PORT); 50051: the planner.
EXPOSE 8080 9400 50051
ENTRYPOINT ["fleet"]
CMD ["--help"]
