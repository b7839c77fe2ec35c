"""The typed catalogue of every event Waybill publishes: one place, versioned types.

Subjects are `<domain>.<entity>.<past_tense>`; the CloudEvents `type` adds a version
suffix (`order.ping.requested.v1`) that changes only when a payload changes
incompatibly. Payloads ignore unknown fields, so adding a field is compatible.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from services.common.envelope import Envelope, subject_of

DOMAINS = ("customer", "order", "shipment", "returns", "supplier")
DEADLETTER_STREAM = "DEADLETTER"
DEADLETTER_PREFIX = "deadletter"


def stream_name(domain: str) -> str:
    return domain.upper()


class Event(BaseModel):
    """Base of every event payload; subclasses set TYPE (with version suffix)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    TYPE: ClassVar[str]

    @classmethod
    def subject(cls) -> str:
        return subject_of(cls.TYPE)

    @classmethod
    def domain(cls) -> str:
        return cls.TYPE.split(".", 1)[0]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        event_type = cls.__dict__.get("TYPE")
        if event_type:
            if event_type in CATALOGUE:
                raise TypeError(f"event type {event_type} registered twice")
            if event_type.split(".", 1)[0] not in DOMAINS:
                raise TypeError(f"event type {event_type} has no known domain")
            CATALOGUE[event_type] = cls


CATALOGUE: dict[str, type[Event]] = {}


def parse(envelope: Envelope) -> Event:
    """The typed payload of an envelope; KeyError for a type not in the catalogue."""
    return CATALOGUE[envelope.type].model_validate(envelope.data)


# --- order: diagnostics ---------------------------------------------------------


class PingRequested(Event):
    """An operator asked for a round trip through NATS, the bridge and Temporal."""

    TYPE = "order.ping.requested.v1"
    ping_id: str
    message: str


class PingAnswered(Event):
    """The ping workflow called back: the whole spine works."""

    TYPE = "order.ping.answered.v1"
    ping_id: str
    workflow_id: str


def asyncapi_document() -> dict[str, Any]:
    """The catalogue as an AsyncAPI 3.0 document."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for event_type, model in sorted(CATALOGUE.items()):
        name = event_type.replace(".", "_")
        messages[name] = {
            "name": event_type,
            "title": model.__name__,
            "summary": (model.__doc__ or "").strip(),
            "contentType": "application/cloudevents+json",
            "payload": model.model_json_schema(),
        }
        channels[name] = {
            "address": model.subject(),
            "messages": {name: {"$ref": f"#/components/messages/{name}"}},
        }
        operations[f"publish_{name}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{name}"},
        }
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "Waybill events", "version": "1"},
        "defaultContentType": "application/cloudevents+json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }
