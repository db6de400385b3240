# The gateway as a container: one process, non-root, config at /etc/gateway/config.yaml.
#
#   docker build -t pinning-gateway .
#   docker run --rm -p 12000:12000 --stop-timeout 30 -e GATEWAY_KEY=... -e OPENAI_API_KEY=... pinning-gateway
#
# The baked-in config (deploy/config.yaml) requires gateway keys: the container
# listens on 0.0.0.0 and refuses to start without GATEWAY_KEY. Mount your own
# config as a directory over /etc/gateway. Behind something that authenticates
# clients, a config without `auth` runs with the command
# `up --host 0.0.0.0 --port 12000 --allow-unauthenticated`.
# --stop-timeout: Docker's default 10 s would cut streams the 25 s drain lets finish.

FROM python:3.11-slim AS build
WORKDIR /src
RUN python -m venv /opt/gateway
COPY pyproject.toml README.md ./
COPY gateway ./gateway
RUN /opt/gateway/bin/pip install --no-cache-dir .

FROM python:3.11-slim
RUN groupadd --system --gid 10001 gateway \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/gateway --create-home gateway
COPY --from=build /opt/gateway /opt/gateway
COPY deploy/config.yaml /etc/gateway/config.yaml
ENV PATH=/opt/gateway/bin:$PATH \
    GATEWAY_CONFIG=/etc/gateway/config.yaml \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
WORKDIR /home/gateway
EXPOSE 12000
# Liveness only (cheap: no pin-store scan); readiness is /readyz, for orchestrators.
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:12000/healthz', timeout=2).status != 200)"]
ENTRYPOINT ["gateway"]
# The listener's port in the config is overridden so the image always serves on 12000.
CMD ["up", "--host", "0.0.0.0", "--port", "12000", "--drain-timeout", "25"]
