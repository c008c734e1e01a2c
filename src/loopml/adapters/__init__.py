"""I/O behind the ports: SQL stores, artifact storage, model flavors."""
