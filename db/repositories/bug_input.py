"""What a filed bug may hold: the checks of ``create_bug``'s arguments, each refusal naming the
field and what is allowed (InvalidArgument), before anything is sent."""

from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from db.bug_schemas import Evidence
from db.enums import BugCategory, BugPriority, BugStatus
from db.errors import InvalidArgument

MAX_STEPS = 50
MAX_STEP_LENGTH = 1_000
MAX_EVIDENCE = 20


def enum_value(field: str, enum: type[BugCategory | BugPriority | BugStatus], value: object) -> str:
    try:
        return enum(str(value)).value
    except ValueError:
        allowed = ", ".join(m.value for m in enum)
        raise InvalidArgument(field, f"{value!r} is not one of: {allowed}") from None


def confidence_of(value: float, field: str = "confidence") -> float:
    if not 0.0 <= float(value) <= 1.0:
        raise InvalidArgument(field, f"must be between 0 and 1, got {value}")
    return float(value)


def steps_of(steps: Sequence[str]) -> list[str]:
    if isinstance(steps, str):
        raise InvalidArgument("steps_to_reproduce", "must be a list of steps, not one string")
    if len(steps) > MAX_STEPS:
        raise InvalidArgument("steps_to_reproduce", f"at most {MAX_STEPS} steps, got {len(steps)}")
    for i, step in enumerate(steps):
        if not isinstance(step, str) or not step.strip():
            raise InvalidArgument(f"steps_to_reproduce[{i}]", "must be a non-empty string")
        if len(step) > MAX_STEP_LENGTH:
            raise InvalidArgument(
                f"steps_to_reproduce[{i}]", f"at most {MAX_STEP_LENGTH} characters"
            )
    return list(steps)


def evidence_of(items: Sequence[Evidence | dict[str, Any]]) -> list[dict[str, Any]]:
    if len(items) > MAX_EVIDENCE:
        raise InvalidArgument("evidence", f"at most {MAX_EVIDENCE} items, got {len(items)}")
    out = []
    for i, item in enumerate(items):
        try:
            ev = item if isinstance(item, Evidence) else Evidence.model_validate(item)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            raise InvalidArgument(
                f"evidence[{i}]{'.' + loc if loc else ''}", str(err["msg"])
            ) from None
        out.append(ev.model_dump(mode="json", exclude_none=True))
    return out
