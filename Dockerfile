# One image for every callcard process (migrate, app, bridge, or any part alone): the compose
# service picks the parts with its command. The source stays in /app (installed editable) because
# the web app serves /app/web_static next to its package.
FROM python:3.11-slim

# MALLOC_ARENA_MAX: glibc gives each thread (database work runs in asyncio's thread pool) a malloc
# arena of its own, up to 8 per core, each keeping what it once held; two arenas cost the app
# process ~8 MB less resident memory with 1,000 desks (bench/memory.py).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MALLOC_ARENA_MAX=2

WORKDIR /app
COPY pyproject.toml README.md ./
COPY agent_desk ./agent_desk
COPY ami_bridge ./ami_bridge
COPY callcard ./callcard
COPY crm_core ./crm_core
COPY ivr ./ivr
COPY routing ./routing
COPY web_static ./web_static
RUN pip install -e . \
 && groupadd --system --gid 10001 callcard \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /app callcard

USER callcard
EXPOSE 8000 4573 9100
CMD ["callcard", "serve"]
