"""The model server: an ASGI app that serves deployments, logs every prediction, swaps live."""
