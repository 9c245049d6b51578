# followup: one image for the web app, the Celery workers and the scheduler.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    FOLLOWUP_VAR_DIR=/var/lib/followup TZ=Asia/Tokyo
RUN apt-get update && apt-get install -y --no-install-recommends fonts-noto-cjk tzdata \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --create-home --home-dir /app followup
WORKDIR /app
COPY pyproject.toml README.md ./
COPY followup ./followup
COPY workers ./workers
RUN pip install .
COPY config ./config
COPY templates ./templates
RUN mkdir -p /var/lib/followup && chown followup /var/lib/followup
USER followup
CMD ["followup", "--help"]
