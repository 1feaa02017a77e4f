"""A cited chat assistant over one German Wikipedia article (and any documents you add)."""

__version__ = "0.1.0"


class AssistantError(Exception):
    """An error a user can fix; its message says how. The CLI and UI show it as one line."""
