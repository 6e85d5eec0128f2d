# The MCP server as an image: streamable HTTP on port 8000, the Kubernetes provider, run as a non-root user.
#
#   docker build -t kubernetes-agent-sandbox:0.3.0 .
#   docker run -p 8000:8000 -e KUBERNETES_AGENT_SANDBOX_TOKENS="$(cat tokens.txt)" \
#       -e KUBERNETES_AGENT_SANDBOX_WARM_POOL=python-pool -e KUBERNETES_AGENT_SANDBOX_API_URL=http://router:8080 \
#       kubernetes-agent-sandbox:0.3.0
#
# Every setting is an environment variable (KUBERNETES_AGENT_SANDBOX_<NAME>) or a flag after `serve`; see
# `docker run --rm kubernetes-agent-sandbox:0.3.0 serve --help` and docs/deploy.md. The local (bubblewrap)
# provider is not meant for this image: it needs bwrap and unprivileged user namespaces inside the container.

ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

# --- build: a virtual environment with the package and its dependencies, nothing else ---
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY src ./src
# Installers are left behind: the final stage gets the environment without pip. The bytecode pip compiles stays:
# the root filesystem is read-only at run time, so nothing could be cached later.
RUN /opt/venv/bin/python -m pip install --no-cache-dir . \
    && /opt/venv/bin/python -m pip uninstall --yes pip

# --- final: the interpreter, the environment, an unprivileged user ---
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="kubernetes-agent-sandbox" \
      org.opencontainers.image.description="MCP server that runs AI agents' code in agent-sandbox pods" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 sandbox \
    && useradd --system --uid 10001 --gid sandbox --home-dir /nonexistent --no-create-home \
       --shell /usr/sbin/nologin sandbox
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    KUBERNETES_AGENT_SANDBOX_TRANSPORT=http \
    KUBERNETES_AGENT_SANDBOX_HOST=0.0.0.0 \
    KUBERNETES_AGENT_SANDBOX_PORT=8000 \
    KUBERNETES_AGENT_SANDBOX_STATELESS=true \
    KUBERNETES_AGENT_SANDBOX_PROVIDER=kubernetes \
    KUBERNETES_AGENT_SANDBOX_LOG_LEVEL=INFO
USER 10001:10001
WORKDIR /tmp
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('KUBERNETES_AGENT_SANDBOX_PORT', '8000') + '/healthz', timeout=4)"]
ENTRYPOINT ["kubernetes-agent-sandbox"]
CMD ["serve"]
