# syntax=docker/dockerfile:1
#
# anomstream: the `anomstream` console script on python:3.11-slim, running as a non-root user.
#
#   docker build -t anomstream:local .                              # CPU TensorFlow (EXTRAS=cpu)
#   docker build --build-arg EXTRAS=gpu -t anomstream:local-gpu .   # CUDA TensorFlow (tensorflow[and-cuda])
#   docker run --rm -e ANOMSTREAM_BOOTSTRAP_SERVERS=host:9092 anomstream:local worker
#
# The image ships no Java and no Kafka: point ANOMSTREAM_BOOTSTRAP_SERVERS at a cluster
# (docker-compose.yml runs one). `make lint-docker` lints this file with hadolint.

# Bookworm is pinned as well as the Python minor version, so a new Debian release does not
# change the base image under a rebuild.
FROM python:3.11-slim-bookworm

# Extras of pyproject.toml: "cpu" (tensorflow-cpu) or "gpu" (tensorflow[and-cuda]); exactly one.
ARG EXTRAS=cpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    ANOMSTREAM_DATA_DIR=/data \
    ANOMSTREAM_REGISTRY_DIR=/registry

WORKDIR /opt/anomstream

# Dependencies first, in a layer of their own: TensorFlow is ~1 GB (several with CUDA), and this
# layer stays cached while only the code changes. The list comes straight from pyproject.toml.
COPY pyproject.toml ./
RUN python -c 'import os, tomllib; \
project = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
extras = [e for e in os.environ["EXTRAS"].replace(" ", "").split(",") if e]; \
print("\n".join(project["dependencies"] + [r for e in extras for r in project["optional-dependencies"][e]]))' \
        > /tmp/requirements.txt \
    && pip install --no-cache-dir -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The package itself. --no-deps: the layer above installed exactly the declared dependencies.
COPY README.md ./
COPY anomstream/ anomstream/
COPY producers/ producers/
COPY consumers/ consumers/
COPY models/ models/
COPY stream/ stream/
RUN pip install --no-cache-dir --no-deps . \
    && rm -rf build

# Non-root user. /registry is created here, owned by that user, so that a named volume mounted
# there starts with the same owner and the trainer can write models into it.
RUN groupadd --system --gid 10001 anomstream \
    && useradd --system --no-log-init --uid 10001 --gid anomstream \
        --create-home --home-dir /home/anomstream --shell /usr/sbin/nologin anomstream \
    && mkdir -p /data /registry \
    && chown anomstream:anomstream /registry

# Numeric, so that runtimes which check runAsNonRoot (Kubernetes) can verify it.
USER 10001:10001
WORKDIR /home/anomstream

# SIGTERM makes a worker finish its batch, commit and exit (compose: stop_grace_period).
STOPSIGNAL SIGTERM
ENTRYPOINT ["anomstream"]
CMD ["worker"]
