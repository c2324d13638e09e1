"""The embedded local stack: moto in server mode, infra/template.yaml provisioned into it, and
app.py's Lambda handlers run in-process on their event sources (see stack.py)."""
