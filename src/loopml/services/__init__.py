"""Use cases, one module per area. Every mutation is recorded as an event."""
