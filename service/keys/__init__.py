"""Keys: project keys, admin keys and projects (`project_repository`, `admin_key_repository`),
what a key is (`checks`), the request dependencies that turn a key into its project or its
admin key (`dependencies`), the Admin API's projects and keys (`routes`, `schemas`), the
stamp that makes a revocation hold from the next chat request on (`revocations`), and the
`whetstone keys` commands (`cli`).

Kept empty: `service.deps` needs `checks` (through `service.models.access`) and
`dependencies` needs `service.deps`, so importing one module here must not import the
other."""
