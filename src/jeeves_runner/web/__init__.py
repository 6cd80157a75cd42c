"""The dashboard: server-rendered pages at /ui (routes.py), Jinja2 templates, and a few small
static files shipped in the package (htmx vendored, no CDN). Pages read through the same store
gateway as the API and act through the same RunnerControl."""
