# One image for the web and worker services (see docker-compose.yml).
FROM python:3.11-slim-bookworm
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends dataset-fashion-mnist && rm -rf /var/lib/apt/lists/*
COPY requirements.txt .
# The CPU build of torch: no CUDA download.
RUN pip install --extra-index-url https://download.pytorch.org/whl/cpu -r requirements.txt
COPY . .
RUN DJANGO_SETTINGS_MODULE=labelling.settings SECRET_KEY=build python manage.py collectstatic --noinput
# Not root: the service writes only under /data (the compose file's volume, created owned by app).
RUN useradd --system --create-home --uid 1000 app && mkdir -p /data && chown app /data
USER app
EXPOSE 8000
# The same gunicorn settings as docker-compose.yml (threads per worker, timeouts: labelling/gunicorn_conf.py).
CMD ["gunicorn", "-c", "python:labelling.gunicorn_conf", "labelling.wsgi"]
