# One training attempt: `python -m trainer run --spec URL --report URL --token T`.
# PyPI's Linux torch wheels bundle CUDA; the node needs the NVIDIA driver and device plugin.
#   docker build -f deploy/docker/trainer.Dockerfile -t whetstone/trainer:0.1.0 .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 HF_HUB_OFFLINE=1
WORKDIR /app
RUN pip install torch==2.13.0
COPY pyproject.toml README.md ./
COPY contracts ./contracts
COPY service ./service
COPY trainer ./trainer
COPY serving ./serving
COPY clients ./clients
RUN pip install '.[train,wandb]' && useradd --uid 10001 --user-group --no-create-home whetstone

USER 10001
ENTRYPOINT []
CMD ["python", "-m", "trainer", "--help"]
