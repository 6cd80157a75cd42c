"""HTTP API: one module per resource, one place (errors.py) mapping errors to status codes."""
