"""What every pydantic schema module shares: the input and output base models, the URL type
and offset pagination.

Its own module so that the entity modules (``db.schemas`` for crawl sessions,
``db.page_schemas``, ``db.bug_schemas``) build on one base without importing one another.
Inputs forbid unknown fields, so a typo is an error rather than silently ignored data. Outputs
(``*Public`` and the result models) are what the repositories return and what the tools hand to
the agent unchanged: one path for data.
"""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

MAX_URL_LENGTH = 2048

Url = Annotated[str, Field(min_length=1, max_length=MAX_URL_LENGTH)]


class InputModel(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class OutputModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Pagination(BaseModel):
    """Offset pagination facts carried by every list result."""

    total: int = Field(description="Rows matching the filters, over all pages.")
    skip: int
    limit: int
    has_more: bool
    next_skip: int | None = Field(description="Pass as 'skip' to get the next page; null at end.")

    @classmethod
    def of(cls, total: int, skip: int, limit: int, returned: int) -> "Pagination":
        has_more = skip + returned < total
        return cls(
            total=total,
            skip=skip,
            limit=limit,
            has_more=has_more,
            next_skip=skip + returned if has_more else None,
        )
