"""Models: `/v1/models` (`routes`, `schemas`), its aliases (`alias_routes`, the rules in
`aliases`) and the Admin API's checkpoint permissions (`permission_routes`,
`permission_schemas`); how a fine-tuned or checkpoint model appears and disappears
(`lifecycle`), what `/v1/models` shows (`catalog`), the pointers vLLM's resolver reads
(`pointers`), who may chat with which model (`access`), where each base model's vLLM is
(`vllms`), and loading and unloading adapters there (`warm_start`). Their SQL is in
`repository`, `alias_repository` and `permission_repository`."""
