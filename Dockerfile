# One image for every Waybill process; the command picks the process:
#   python -m services.<customer|order|shipment|returns|supplier>
#   python -m workflows.worker | python -m workflows.bridge
# The `waybill` command (cli/) is in it too, for ops in a running container:
#   waybill token --role ops --user <you>, waybill deadletters list
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app \
    WAYBILL_VAR_DIR=/var/lib/waybill

WORKDIR /app

COPY pyproject.toml README.md ./
COPY cli/ cli/
COPY services/ services/
COPY workflows/ workflows/

# Installs the dependencies (and the package itself); the processes import from the
# source tree in /app, which also carries the Alembic migrations (env.py,
# script.py.mako, versions/*.py) that each service applies at start-up.
RUN pip install --no-cache-dir . \
    && rm -rf build *.egg-info \
    && find /app -name __pycache__ -prune -exec rm -rf {} + \
    && groupadd --system --gid 10001 waybill \
    && useradd --system --uid 10001 --gid waybill --no-create-home --home-dir /nonexistent waybill \
    && mkdir -p /var/lib/waybill \
    && chown waybill:waybill /var/lib/waybill

# Numeric so that Kubernetes' runAsNonRoot can verify it.
USER 10001

CMD ["python", "-m", "services.order"]
