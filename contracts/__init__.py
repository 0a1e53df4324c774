"""The language Whetstone's parts speak to each other: torch-free, and nothing else of ours.

- `spec`: the JobSpec, the one typed input of a training attempt (every default in one place);
- `store`: the object store port; `local_store` and `s3_store` its adapters (a local folder,
  S3); `store_url` opens one from its URL;
- `layout`: where a job's outputs live in the store;
- `messages`: the progress channel, trainer -> service (typed messages, the reply, exit codes);
- `names`: the fine-tuned and checkpoint model name grammar;
- `pointers`: the model pointer from a served name to its adapter;
- `chat`: chat examples -> tokens and loss mask with the base model's own template;
- `formats`: the dataset line formats (chat, preference and reinforcement JSONL), the rules
  of their messages in `dataset_messages`.

`service/`, `serving/` and `trainer/` import these; `contracts/` imports none of them. The
SDK (`clients/`) imports only `contracts.formats` (and through it `dataset_messages`), which
needs only the standard library (`orjson` when installed): one definition of a valid
fine-tuning file, so the SDK's local check and the server's are the same code. `contracts`
ships in the same distribution as `clients`. `tests/unit/service/test_imports.py` enforces
these rules.
"""
