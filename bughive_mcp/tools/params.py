"""Argument types shared by the tools: each carries its bounds and a description, so the
agent sees them in the input schema."""

import uuid
from typing import Annotated

from pydantic import Field

SessionId = Annotated[uuid.UUID, Field(description="Crawl session id.")]
PageId = Annotated[uuid.UUID, Field()]
BugId = Annotated[uuid.UUID, Field()]
Limit = Annotated[int, Field(ge=1, le=100)]
Skip = Annotated[
    int, Field(ge=0, le=10_000_000, description="Items to skip; pass the previous next_skip.")
]
HttpUrl = Annotated[
    str,
    Field(
        min_length=1,
        max_length=2048,
        pattern=r"^[hH][tT][tT][pP][sS]?://\S+$",
        description="Absolute http(s) URL.",
    ),
]
