"""The server's HTML pages: Jinja templates, static files (plain CSS, vanilla JS) and how pages are rendered."""
