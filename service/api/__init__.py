"""One router module per OpenAI resource."""
