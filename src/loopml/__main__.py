"""`python -m loopml` is the `loopml` command."""

from loopml.cli.app import main

main()
