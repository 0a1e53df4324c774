"""Wire schemas: what the API sends and receives, named as OpenAI names them."""
