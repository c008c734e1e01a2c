"""The team server: the workspace behind a REST API with users, tokens and roles."""
