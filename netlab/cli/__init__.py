"""The `netlab` command: a typer app, one module per command group."""
