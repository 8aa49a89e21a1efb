"""The exception hierarchy of uws-adapter.

Every error the package raises on purpose derives from :class:`UwsAdapterError`::

    UwsAdapterError
    ├── InputError (also ValueError)         bad input to a public entry point
    │   └── UnsupportedByApi                 valid input the chosen API cannot carry
    ├── DocumentError (also ValueError)      an untrusted document (XML or JSON) was refused
    │   └── CallbackParseError               ... and it was meant to be a callback
    └── ResourceError                        the bundled WSDL/XSD files are missing or broken

Messages name the offending field and say how to fix it, so that a CLI can print them as they are.
"""

from __future__ import annotations

from typing import Optional


class UwsAdapterError(Exception):
    """Base class of every exception uws-adapter raises on purpose."""


class InputError(UwsAdapterError, ValueError):
    """Input that cannot become a valid request. ``field`` names where it is, ``fix`` what to do."""

    def __init__(self, field: str, problem: str, fix: str) -> None:
        self.field = field
        self.problem = problem
        self.fix = fix
        super().__init__(f"{field}: {problem}; {fix}")

    def within(self, outer: str) -> InputError:
        """The same error, located inside ``outer`` (e.g. a list index or a file line)."""
        located = type(self)(f"{outer}{self.field}", self.problem, self.fix)
        located.__cause__ = self.__cause__
        return located


class UnsupportedByApi(InputError):
    """A valid request that the chosen API (UWS SOAP or REST) has no way to express."""


class DocumentError(UwsAdapterError, ValueError):
    """An untrusted XML or JSON document that is malformed, hostile, too large or of the wrong shape.

    ``line`` is the line of the problem in an XML document, when known.
    """

    def __init__(self, message: str, *, line: Optional[int] = None) -> None:
        self.line = line
        super().__init__(message)


class CallbackParseError(DocumentError):
    """A document that is not a valid carrier callback (UWS SOAP or REST JSON)."""


class ResourceError(UwsAdapterError):
    """The WSDL or schema files shipped with the package cannot be found or loaded."""
