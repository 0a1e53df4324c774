"""The `whetstone` command line (Typer + rich) over the SDK."""
