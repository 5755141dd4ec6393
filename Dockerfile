# One image for the application and its workers; the command picks the role:
#   docker build -t oxide-shop --build-arg APP_DIR=examples/shop --build-arg OXIDE_APP=shop.app:app .
#   docker run oxide-shop queue:work --connection=redis --queue=high,default,low
# The entrypoint is the oxide CLI, which finds the application through OXIDE_APP.
# APP_DIR is copied to /app, the working directory: its config/ and .env are read from there.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --create-home --uid 10001 --user-group oxide

# The queue package with every backend's driver (Redis, PostgreSQL, MariaDB/MySQL).
WORKDIR /opt/oxide-queue
COPY pyproject.toml README.md* ./
COPY oxide/ oxide/
# The package is this source tree; its dependencies' ranges are in pyproject.toml.
# hadolint ignore=DL3013
RUN python -m pip install ".[redis,postgres,mysql]"

# The application. Its own dependencies, if it lists any in requirements.txt, are installed too.
ARG APP_DIR=examples/shop
WORKDIR /app
COPY ${APP_DIR}/ ./
RUN if [ -f requirements.txt ]; then python -m pip install -r requirements.txt; fi \
    && oxide vendor:publish queue \
    && mkdir -p database storage \
    && chown oxide:oxide database storage

ARG OXIDE_APP=shop.app:app
ENV OXIDE_APP=${OXIDE_APP}

USER 10001:10001
# SIGTERM (Docker's default stop signal) makes a worker finish the job in hand and exit 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["oxide"]
CMD ["queue:work"]
