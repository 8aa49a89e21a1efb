"""The device-state actions uws-adapter sends: Restore and Suspend."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional, Union

from uws_adapter.errors import InputError, shown


@dataclass(frozen=True)
class Restore:
    """Restore service to suspended devices."""

    element: ClassVar[str] = "Restore"


@dataclass(frozen=True)
class Suspend:
    """Suspend service. ``with_billing`` exists only in the REST API; UWS envelopes refuse it."""

    with_billing: Optional[bool] = None
    element: ClassVar[str] = "Suspend"

    def __post_init__(self) -> None:
        if self.with_billing is not None and not isinstance(self.with_billing, bool):
            raise InputError(
                "with_billing", f"expected True, False or None, got {shown(self.with_billing)}", "pass a bool"
            )


Action = Union[Restore, Suspend]


def action_named(name: str, *, with_billing: Optional[bool] = None) -> Action:
    """``"restore"`` or ``"suspend"`` (any case) as an action."""
    lowered = name.strip().lower() if isinstance(name, str) else ""
    if lowered == "restore":
        if with_billing is not None:
            raise InputError("with_billing", "applies to suspend only", "drop it for restore")
        return Restore()
    if lowered == "suspend":
        return Suspend(with_billing)
    raise InputError("action", f"unknown action {shown(name)}", "use restore or suspend")
