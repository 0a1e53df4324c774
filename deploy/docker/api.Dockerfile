# The control plane: API (`python -m service`) and scheduler (`python -m service.scheduler`).
# No torch: the base install only. Build from the repository root:
#   docker build -f deploy/docker/api.Dockerfile -t whetstone/api:0.1.0 .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY contracts ./contracts
COPY service ./service
COPY trainer ./trainer
COPY serving ./serving
COPY clients ./clients
RUN pip install '.[server]' && useradd --uid 10001 --user-group --no-create-home whetstone

USER 10001
EXPOSE 8000
CMD ["python", "-m", "service"]
