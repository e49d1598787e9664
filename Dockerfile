# The rtcdp-dagster code location: a gRPC code server for rtcdp_assets.definitions, and the
# image every run pod starts from (K8sRunLauncher takes the image from the code server).
#   docker build -t ghcr.io/your-org/rtcdp-dagster:0.1.0 .
# Secrets never enter the image: the pods get them from Kubernetes secrets
# (deploy/kubernetes/values.yaml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DAGSTER_HOME=/opt/dagster/dagster_home \
    RTCDP_ENV=production

# A fixed uid/gid so the Helm values can name it (runAsUser, fsGroup for the mounted SFTP key).
RUN groupadd --system --gid 10001 rtcdp \
    && useradd --system --uid 10001 --gid rtcdp --home-dir /opt/rtcdp --create-home rtcdp \
    && mkdir -p "$DAGSTER_HOME" && chown rtcdp:rtcdp "$DAGSTER_HOME"

WORKDIR /opt/rtcdp/src
# Dependencies first, resolved within the lock file's pins: a code change then reuses this
# layer. The empty packages only let pip build the project's metadata at this point.
COPY requirements.lock pyproject.toml README.md ./
RUN mkdir rtcdp_assets resources asset_checks \
    && touch rtcdp_assets/__init__.py resources/__init__.py asset_checks/__init__.py \
    && pip install -c requirements.lock '.[postgres,k8s]'
COPY workspace.yaml ./
COPY rtcdp_assets ./rtcdp_assets
COPY resources ./resources
COPY asset_checks ./asset_checks
RUN pip install --no-deps --force-reinstall -c requirements.lock '.[postgres,k8s]' \
    && pip check

USER rtcdp
WORKDIR /opt/rtcdp
EXPOSE 3030
# The Helm chart replaces this with `dagster code-server start -h 0.0.0.0 -p 3030` plus the
# deployment's codeServerArgs; the same command here makes `docker run` behave alike.
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "3030", \
     "--module-name", "rtcdp_assets.definitions", "--location-name", "rtcdp"]
