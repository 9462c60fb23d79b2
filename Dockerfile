# mcp-oauth-shim as a container: `mcp-oauth-shim serve`, configured from environment variables only.
#
#   docker build -t mcp-oauth-shim .
#   docker run -p 8000:8000 --env-file shim.env mcp-oauth-shim
#
# shim.env holds MCP_OAUTH_SHIM_PUBLIC_URL, MCP_OAUTH_SHIM_UPSTREAM_ISSUER, MCP_OAUTH_SHIM_CLIENT_ID,
# MCP_OAUTH_SHIM_CLIENT_SECRET, MCP_OAUTH_SHIM_SECRET_KEYS (and MCP_OAUTH_SHIM_MCP_UPSTREAM to guard
# an MCP server): every `serve` flag has its variable (`mcp-oauth-shim serve --help`). Nothing
# secret is baked into the image; give secrets at run time (an env file, your orchestrator's
# secrets), never as build arguments.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md LICENSE MANIFEST.in ./
COPY mcp_oauth_shim ./mcp_oauth_shim
COPY mcp_bridge ./mcp_bridge
# The metrics extra, so --metrics-port works; the source is not needed once installed.
RUN pip install ".[metrics]" && rm -rf /src

# A user without a home, a shell or any file of its own: the shim keeps no state on disk.
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin shim
USER 10001:10001
WORKDIR /

# Listen on every interface of the container (MCP_OAUTH_SHIM_PUBLIC_URL is then required), on
# 8000, logging one JSON object per line. Override any of them with -e.
ENV MCP_OAUTH_SHIM_HOST=0.0.0.0 \
    MCP_OAUTH_SHIM_PORT=8000 \
    MCP_OAUTH_SHIM_LOG_FORMAT=json
EXPOSE 8000

# Liveness: GET /healthz on the container's own port, under the public URL's path if it has
# one. Python's urllib, as the slim image has no curl; a non-2xx answer or no answer exits 1.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.parse, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('MCP_OAUTH_SHIM_PORT', '8000') + urllib.parse.urlsplit(os.environ.get('MCP_OAUTH_SHIM_PUBLIC_URL', '')).path.rstrip('/') + '/healthz', timeout=3)"]

ENTRYPOINT ["mcp-oauth-shim", "serve"]
