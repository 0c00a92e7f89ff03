"""REST API (being written): registered on Ryu's WSGI server by the app."""


def register(app, wsgi) -> None:
    """Register the REST controllers for ``app`` on ``wsgi``."""
