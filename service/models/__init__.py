"""Models: how a fine-tuned or checkpoint model appears and disappears (`lifecycle`), what
`/v1/models` shows (`catalog`), the pointers vLLM's resolver reads (`pointers`), who may chat
with which model (`access`), where each base model's vLLM is (`routes`), and loading and
unloading adapters there (`warm_start`)."""
