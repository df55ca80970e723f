# syntax=docker/dockerfile:1
# storekit-sync: a small, non-root image. Build: docker build -t storekit-sync .
# Run it with docker-compose.yml (production: Apple, secrets as Docker secrets, a read-only root
# file system) or docker-compose.dev.yml (development: the App Store simulator).
# Not run on the machine this project is built on (it has no Docker engine); kept correct by reading.

FROM python:3.12-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# The locked versions first (a layer that changes only with the lock), each checked by its hash.
COPY requirements.lock ./
RUN python -m venv /opt/venv && /opt/venv/bin/pip install --require-hashes -r requirements.lock
COPY pyproject.toml README.md LICENSE alembic.ini ./
COPY app ./app
COPY migrations ./migrations
# Editable, so that the package finds migrations/ beside app/ (app/migrate.py) in /src; built with
# the locked setuptools, nothing fetched.
RUN /opt/venv/bin/pip install --no-deps --no-build-isolation -e .

FROM python:3.12-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LOG_FORMAT=json \
    DATA_DIR=/var/lib/storekit-sync
RUN useradd --system --uid 10001 --create-home --home-dir /var/lib/storekit-sync storekit \
 && mkdir /certs && chown storekit /certs
# /certs: where the simulator keeps its certificate chain (a named volume inherits this owner)
COPY --from=build /opt/venv /opt/venv
COPY --from=build /src /src
WORKDIR /var/lib/storekit-sync
USER storekit
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2).status != 200)"]
ENTRYPOINT ["storekit-sync"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
