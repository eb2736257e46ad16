# The bridge image (n8nctl's job bridge): slim Python, pinned packages, a non-root user, a healthcheck.
# The compose stacks build it (templates/compose/compose.yaml.j2) and pass BASE_IMAGE from the
# BRIDGE_BASE_IMAGE setting; it is tagged BRIDGE_IMAGE:<n8nctl version>. No secret is baked in: the
# bridge reads them from its environment at start. No `# syntax=` line: BuildKit would fetch a frontend
# image from a registry for it, and the built-in one reads this file.
ARG BASE_IMAGE=python:3.11.11-slim-bookworm
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# Exact versions, no resolver: the file lists every package the bridge imports (and nothing else).
COPY bridge-requirements.txt /tmp/bridge-requirements.txt
RUN pip install --no-deps -r /tmp/bridge-requirements.txt && rm /tmp/bridge-requirements.txt

COPY pyproject.toml README.md ./
COPY n8nctl ./n8nctl
COPY workflows ./workflows
RUN pip install --no-deps . \
    && n8nctl bridge serve --help > /dev/null \
    && useradd --system --uid 10001 --home-dir /state --create-home bridge \
    && chmod 0700 /state

USER bridge
ENV N8NCTL_PROJECT_DIR=/app N8NCTL_STATE_DIR=/state
VOLUME ["/state"]
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=6 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=3)"]
CMD ["n8nctl", "bridge", "serve", "--host", "0.0.0.0", "--port", "8000"]
