"""Domain exceptions shared by ``causal`` and ``runs_generator``.

Every exception subclasses :class:`ValueError` so callers that already catch bad
input keep working. Messages state what is wrong, what was expected, what was
received and what to do.
"""

from __future__ import annotations

__all__ = ["UdlError", "SchemaError", "ConfigError", "GraphError", "BaselineError"]


class UdlError(ValueError):
    """Base class of every error this project raises on purpose."""


class SchemaError(UdlError):
    """A runs table or file does not match the declared schema (names the column/file)."""


class ConfigError(UdlError):
    """A configuration key or value is unknown or out of range (names key, range, value)."""


class GraphError(UdlError):
    """A graph, edge, path or node is malformed or unknown (names the node/edge)."""


class BaselineError(UdlError):
    """A sign-stability baseline file is missing, malformed or incompatible."""
