"""The `loopml` command line: Typer commands, one module per group, heavy imports inside."""
