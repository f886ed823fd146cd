"""Data files bundled with the server (the model price snapshot)."""
