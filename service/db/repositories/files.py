"""Moved to `service.files.repository`. The fine-tuning code (`service.jobs`,
`service.scheduler`, being changed in parallel) still imports it from here; this re-export
goes when that code moves into its slice."""

from service.files.repository import add_file, delete_file, file_key, get_file, list_files

__all__ = ["add_file", "delete_file", "file_key", "get_file", "list_files"]
