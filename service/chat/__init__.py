"""Chat completions: `/v1/chat/completions` (`routes`; `schemas` documents the contract, the
body is forwarded as it came) and the relay to the vLLM of the model's base model
(`serving_client`). Who may chat with which model is `service.models.access`, where each
base model's vLLM is `service.models.vllms`: the models slice answers, this one relays."""
