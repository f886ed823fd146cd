"""The store's SQL, written once for SQLite and PostgreSQL: statements with `?` placeholders, grouped by concern.

Each concern module holds its statements and a class implementing its protocol over an `engine.Engine`;
`store.SqlStore` is their union. The `sqlite` and `postgres` packages hold only what truly differs: how each
engine connects, runs a unit of work and commits.
"""
