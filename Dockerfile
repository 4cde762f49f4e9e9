# Container image of whatsapp-number-exporter.
#
#   docker build -t whatsapp-number-exporter .
#   docker run --rm -p 10067:10067 whatsapp-number-exporter --demo
#   docker run --rm -p 10067:10067 -v "$PWD/config.yaml:/etc/whatsapp-number-exporter/config.yaml:ro" \
#     -e CAMS_ACCESS_KEY_ID -e CAMS_ACCESS_KEY_SECRET whatsapp-number-exporter
#
# Two stages: the first builds the package's wheel and installs it, with its
# dependencies, into a virtual environment; the second copies only that
# environment onto a fresh slim Python. No secret is used or stored at build
# time: credentials reach the container at run time, as environment variables
# or mounted files (see the README). tests/e2e/test_container.py lints this file
# with hadolint and runs the same build steps outside a container.

ARG PYTHON_IMAGE=python:3.12-slim-bookworm

# ---------------------------------------------------------------- build stage
FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
# Only what the wheel is built from (.dockerignore keeps everything else out).
COPY pyproject.toml README.md ./
COPY exporter ./exporter
COPY emulators ./emulators
RUN python -m pip wheel --no-cache-dir --disable-pip-version-check --no-deps --wheel-dir /wheels /src
RUN python -m venv /opt/whatsapp-number-exporter \
 && /opt/whatsapp-number-exporter/bin/pip install --no-cache-dir --disable-pip-version-check /wheels/*.whl

# -------------------------------------------------------------- runtime stage
FROM ${PYTHON_IMAGE}
ARG PYTHON_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="whatsapp-number-exporter" \
      org.opencontainers.image.description="Prometheus exporter for the health of WhatsApp Business phone numbers (Alibaba Cloud CAMS, NxCloud, Kaleyra, Meta Cloud API, Twilio, Infobip)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/whatsapp-number-exporter/whatsapp-number-exporter" \
      org.opencontainers.image.documentation="https://github.com/whatsapp-number-exporter/whatsapp-number-exporter/blob/main/README.md" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"

# A fixed, non-root UID/GID (10001), so Kubernetes' runAsUser and file
# permissions of mounted secrets can rely on it.
# /var/lib/whatsapp-number-exporter holds the state file (--storage.path): the
# WABA restrictions, bans and violations that only webhooks tell. Mount a volume
# there to keep them across container restarts.
RUN groupadd --system --gid 10001 exporter \
 && useradd --system --no-log-init --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin exporter \
 && mkdir -p /var/lib/whatsapp-number-exporter \
 && chown 10001:10001 /var/lib/whatsapp-number-exporter
VOLUME ["/var/lib/whatsapp-number-exporter"]

COPY --from=build /opt/whatsapp-number-exporter /opt/whatsapp-number-exporter
# glibc malloc: buffers over 256 KiB come from mmap (freed, they go back to the OS),
# the heap is trimmed past 1 MiB of free top, and two arenas instead of eight per
# core: RSS stays flat under large response bodies and re-renders.
ENV PATH="/opt/whatsapp-number-exporter/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MALLOC_ARENA_MAX=2 \
    MALLOC_MMAP_THRESHOLD_=262144 \
    MALLOC_TRIM_THRESHOLD_=1048576

USER 10001:10001
EXPOSE 10067
# /-/healthy answers 200 while the process serves HTTP and never depends on a
# provider. With --web.config.file (TLS or basic auth) or another listen
# address, override this check or rely on the orchestrator's probes instead.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
  CMD ["/opt/whatsapp-number-exporter/bin/python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:10067/-/healthy', timeout=4)"]
# Exec form: the exporter is PID 1 and gets SIGTERM, and exits 0 on it.
ENTRYPOINT ["/opt/whatsapp-number-exporter/bin/whatsapp-number-exporter"]
CMD ["--config.file=/etc/whatsapp-number-exporter/config.yaml", "--storage.path=/var/lib/whatsapp-number-exporter"]
