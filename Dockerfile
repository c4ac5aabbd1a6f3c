# ailedger: one image for `ailedger migrate`, `ailedger worker` and `ailedger serve`.
# Built by docker-compose.yml; see docs/deployment.md.

FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY producer/ producer/
COPY worker/ worker/
COPY ailedger/ ailedger/
COPY sql/ sql/
# Wheels for ailedger and all its dependencies; the runtime stage installs them offline.
RUN pip wheel --wheel-dir /wheels ".[server]"

FROM python:3.11-slim-bookworm
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1
# Mounted, not copied, so the wheels do not stay in a layer of the image. Nothing to pin:
# --no-index installs exactly the wheels just built.
# hadolint ignore=DL3013
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels "ailedger[server]"
RUN groupadd --gid 10001 ailedger \
    && useradd --uid 10001 --gid 10001 --create-home ailedger
# Numeric, so an orchestrator enforcing runAsNonRoot can tell without reading /etc/passwd.
USER 10001:10001
WORKDIR /home/ailedger
ENTRYPOINT ["ailedger"]
CMD ["worker"]
