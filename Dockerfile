# mrapsim container image (SPEC §10): a wheel built in one stage, installed into a virtual
# environment, and only that environment copied onto a fresh slim Python base.
#
#   docker build -t mrapsim .
#   docker run --rm -p 8443:8443 -p 8444:8444 -p 9911:9911 -e MRAPSIM_ADMIN_TOKEN=$(openssl rand -hex 32) mrapsim
#
# Configuration: MRAPSIM_* environment variables, and a TOML file at
# /etc/mrapsim/config/mrapsim.toml (mount your own over it; it is layered over the embedded
# defaults). Certificates: /var/lib/mrapsim/certs, in a volume; mount a directory holding ca.pem,
# server.pem and server.key (and ca.key to mint leaves), or let mrapsim create a CA there.
# With --read-only, add --tmpfs /tmp: leaves minted while certs/ is read-only pass through tempfile.
# tests/deploy/test_dockerfile.py parses this file and runs the build stage's RUN steps.

ARG PYTHON_IMAGE=python:3.13-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    WHEELS=/wheels \
    VENV=/opt/mrapsim
WORKDIR /src
COPY pyproject.toml README.md ./
COPY mrapsim/ ./mrapsim/
# A wheel for mrapsim and one for every dependency; all of them ship binary wheels, so no
# compiler is needed and the install below never reaches an index.
RUN python -m pip wheel --wheel-dir "$WHEELS" .
# A virtual environment without pip, filled only from those wheels; the runtime stage copies it.
RUN python -m venv --without-pip "$VENV" \
 && python -m pip --python "$VENV/bin/python" install --no-index --find-links "$WHEELS" mrapsim \
 && "$VENV/bin/mrapsim" --version

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="mrapsim" \
      org.opencontainers.image.description="AWS S3 Multi-Region Access Point edge emulator" \
      org.opencontainers.image.licenses="Apache-2.0"
# A fixed, numeric UID/GID so that Kubernetes' runAsNonRoot can verify it and volume
# permissions (fsGroup) are predictable. The base image's pip is removed: nothing installs here.
RUN groupadd --system --gid 10001 mrapsim \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/mrapsim --no-create-home \
      --shell /usr/sbin/nologin mrapsim \
 && mkdir -p /etc/mrapsim/config /etc/mrapsim/tls /var/lib/mrapsim/certs /var/lib/mrapsim/data \
 && printf '# Mount a mrapsim TOML file here; it is layered over the embedded defaults.\n' \
      > /etc/mrapsim/config/mrapsim.toml \
 && chown -R 10001:10001 /var/lib/mrapsim \
 && python -m pip uninstall --yes --quiet pip
COPY --from=build /opt/mrapsim /opt/mrapsim
ENV PATH=/opt/mrapsim/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MRAPSIM_CONFIG=/etc/mrapsim/config/mrapsim.toml \
    MRAPSIM_ADMIN=0.0.0.0:9911 \
    MRAPSIM_WORKERS=auto
# An environment variable beats the file, so only what a container must differ in is set here:
# the admin API listens on all interfaces (probes, HEALTHCHECK, metrics); one worker per core the
# container may use (`--cpus`, `--cpuset-cpus`) when the store is sqlite, one with the default
# memory store, whose objects worker processes cannot share. The default relative
# paths (certs_dir = "./certs", [store] path = "./data") resolve inside the volume.
WORKDIR /var/lib/mrapsim
VOLUME ["/var/lib/mrapsim"]
USER 10001:10001
# mrap (SNI required), s3 (standard S3 endpoint), admin (plain HTTP: probes and metrics)
EXPOSE 8443 8444 9911
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('MRAPSIM_ADMIN', '127.0.0.1:9911').rpartition(':')[2], timeout=2)"]
ENTRYPOINT ["mrapsim"]
CMD ["serve"]
