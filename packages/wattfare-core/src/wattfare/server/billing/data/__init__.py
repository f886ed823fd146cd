"""Data files bundled with the server (the model price snapshot, and the embedding models' prices)."""
