# Production image: runtime dependencies only, non-root, static files collected at build time.
# One image serves every service of docker-compose.yml (web, migrate, each worker).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    STATIC_ROOT=/app/staticfiles \
    GUNICORN_BIND=0.0.0.0:8000

WORKDIR /app
RUN groupadd --system --gid 10001 app && useradd --system --uid 10001 --gid app --home-dir /app app

COPY requirements.txt ./
RUN pip install -r requirements.txt

COPY . .
# collectstatic needs settings, not a database or real secrets; the key exists only in this step.
# The code stays owned by root: the app user can read it, not change it.
RUN SECRET_KEY=collectstatic-build-only python manage.py collectstatic --noinput -v 0
# prometheus-client's multiprocess files (PROMETHEUS_MULTIPROC_DIR, the `metrics` volume in compose).
RUN mkdir -p /run/coordinator-metrics && chown app:app /run/coordinator-metrics

USER app
EXPOSE 8000
CMD ["python", "-m", "gunicorn", "-c", "gunicorn.conf.py"]
