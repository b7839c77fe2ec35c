"""Inputs and outputs of the ping workflow (side-effect free: imported by the sandbox)."""

from pydantic import BaseModel


class PingInput(BaseModel):
    ping_id: str
    message: str


class AnswerPing(BaseModel):
    ping_id: str
    workflow_id: str


class PingResult(BaseModel):
    ping_id: str
    status: str
