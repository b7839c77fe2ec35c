"""Order service API models."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class PingCreate(BaseModel):
    message: str = Field(min_length=1, max_length=500, examples=["hello spine"])


class PingAnswer(BaseModel):
    workflow_id: str = Field(min_length=1, max_length=128)


class PingPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    message: str
    status: str
    trace_id: str | None
    workflow_id: str | None
    created_at: datetime
    answered_at: datetime | None
