"""The REST API: routes, views, input parsing, tokens and its own HTTPS server."""
