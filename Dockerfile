# The one image every herald service runs (api, worker, sweep, migrate, flower).
# Build: docker build -t herald .   (docker-compose.yml builds it for you)
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The sources only to build and install the package; the migrations ship inside it
# (workflows/migrations), so nothing of the checkout is kept in the image.
WORKDIR /usr/src/herald
COPY pyproject.toml README.md ./
COPY herald ./herald
COPY app ./app
COPY workers ./workers
COPY workflows ./workflows
RUN pip install . \
    && rm -rf /usr/src/herald \
    && useradd --system --uid 10001 --home-dir /srv/herald herald \
    && mkdir -p /var/lib/herald/outbox \
    && chown herald /var/lib/herald/outbox

WORKDIR /srv/herald
# The examples are the default project; mount yours over /srv/project.
COPY examples /srv/project

USER herald
ENV HERALD_PROJECT_DIR=/srv/project \
    EXAMPLES_OUTBOX=/var/lib/herald/outbox

EXPOSE 8080 5555
CMD ["herald", "serve", "--bind", "0.0.0.0:8080"]
