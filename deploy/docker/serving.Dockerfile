# vLLM with the Whetstone LoRA resolver plugin (entry point `vllm.general_plugins`,
# selected with VLLM_PLUGINS=whetstone_lora_resolver). vLLM and torch come from the image;
# Whetstone is added without dependencies so that they stay as vLLM pinned them.
#   docker build -f deploy/docker/serving.Dockerfile -t whetstone/serving:0.1.0 .
FROM vllm/vllm-openai:v0.32.0

ENV PIP_NO_CACHE_DIR=1 HF_HUB_OFFLINE=1 VLLM_NO_USAGE_STATS=1
WORKDIR /opt/whetstone
COPY pyproject.toml README.md ./
COPY contracts ./contracts
COPY service ./service
COPY trainer ./trainer
COPY serving ./serving
COPY clients ./clients
RUN pip install --no-deps . && pip install "boto3>=1.35" "pydantic>=2.9" \
    && useradd --uid 10001 --user-group --no-create-home whetstone

USER 10001
ENTRYPOINT ["python3", "-m", "vllm.entrypoints.openai.api_server"]
