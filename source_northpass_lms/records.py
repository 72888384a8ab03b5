"""What a record becomes: the small pieces a leaf stream declares in its `shape`, applied by the base stream.

Every record starts as the JSON:API resource flattened (`flatten`). A leaf may then declare that its list is a
webhook log whose payload is the record (`WebhookPayload`, which also drops repeated deliveries), that
relationship ids are hoisted to columns (join columns such as `person_id`, which an attribute of the same name
the API already sends is kept over), and that the id is derived from the record's fields (`DerivedId`).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping, MutableMapping, Optional, Tuple

from .cursor import parse_timestamp

# Attributes never copied into records: `invite_token` lets whoever holds it activate that person's account.
DROPPED_ATTRIBUTES = frozenset({"invite_token"})
# Namespace of the ids derived for resources the API sends without one (events). Fixed forever: changing it
# would give every event already in a destination a second id.
DERIVED_ID_NAMESPACE = uuid.UUID("7d0b6f5e-4a52-5c1e-9a57-3e1f3c1b9e44")
DERIVED_ID_SEPARATOR = "\x1f"  # a control character: never inside an id, a type or a timestamp


def flatten(resource: Mapping[str, Any]) -> MutableMapping[str, Any]:
    """A JSON:API resource as a flat record: every attribute at top level, id, type, relationships and links."""
    record: MutableMapping[str, Any] = {
        key: value for key, value in (resource.get("attributes") or {}).items() if key not in DROPPED_ATTRIBUTES
    }
    record["id"] = resource.get("id")
    record["type"] = resource.get("type")
    for key in ("relationships", "links"):
        if key in resource:
            record[key] = resource[key]
    return record


@dataclass(frozen=True)
class DerivedId:
    """An `id` computed from fields of the record, for resources the API sends without one.

    A UUIDv5 of the fields' values, so it is the same on every sync; `instants` are normalised to the
    instant they denote (`...:00Z` and `...:00.000+00:00` give one id). Two resources equal in every field
    get the same id: they are indistinguishable, and a deduplicating destination keeps one.
    """

    fields: Tuple[str, ...]
    instants: Tuple[str, ...] = ()

    def of(self, record: Mapping[str, Any]) -> str:
        parts = []
        for name in self.fields:
            value = record.get(name)
            instant = parse_timestamp(value) if name in self.instants else None
            if instant is not None:
                parts.append(instant.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
            else:
                parts.append("" if value is None else str(value))
        return str(uuid.uuid5(DERIVED_ID_NAMESPACE, DERIVED_ID_SEPARATOR.join(parts)))


@dataclass(frozen=True)
class WebhookPayload:
    """A list of webhook messages whose payload is the record: the message is unwrapped.

    The record is the payload's resource (`attributes.payload.data`) flattened, with `id` taken from the
    payload attribute `id_attribute`, the payload's own id kept as `event_id`, and the message's fields
    renamed by `message_columns`. Messages of another type, or whose payload lacks `id_attribute`, are
    dropped, as are later deliveries of a record already emitted (one message per subscribed URL): the
    first message read wins.
    """

    event_type: str
    id_attribute: str
    message_columns: Mapping[str, str]  # message attribute (or "id") -> record column
    type_column: str  # the column of `message_columns` that holds the message's type
    empty_reason: str  # said once when the log has no message at all

    def record(self, message: Mapping[str, Any]) -> MutableMapping[str, Any]:
        attributes = message.get("attributes") or {}
        payload = attributes.get("payload")
        event = payload.get("data") if isinstance(payload, Mapping) else None
        record = flatten(event if isinstance(event, Mapping) else {})
        record["event_id"] = record.get("id")
        record["id"] = record.get(self.id_attribute) or None
        for source, column in self.message_columns.items():
            record[column] = message.get("id") if source == "id" else attributes.get(source)
        return record

    def first_deliveries(
        self, records: Iterable[Mapping[str, Any]], since: Optional[str], logger: logging.Logger, stream_name: str
    ) -> Iterator[Mapping[str, Any]]:
        """The records worth emitting: of the wanted type, identified, each once per read.

        Duplicates are found with the set of ids emitted in this read: about 100 bytes per record, so a
        3-month log of 100,000 quiz attempts holds about 10 MB.
        """
        seen: set[Any] = set()
        messages = other_types = unusable = duplicates = 0
        for record in records:
            messages += 1
            if record.get(self.type_column) != self.event_type:
                other_types += 1
            elif record.get("id") is None:
                unusable += 1
            elif record["id"] in seen:
                duplicates += 1
            else:
                seen.add(record["id"])
                yield record
        if messages == 0 and since:
            logger.info(f"Stream {stream_name}: 0 records: no message in the log at or after {since}.")
        elif messages == 0:
            logger.info(f"Stream {stream_name}: 0 records: {self.empty_reason}")
        elif other_types or unusable or duplicates:
            logger.info(
                f"Stream {stream_name}: {len(seen)} records from {messages} messages; dropped {other_types} of another "
                f"type than {self.event_type}, {unusable} without {self.id_attribute}, {duplicates} repeated "
                "deliveries (one per subscribed webhook URL)."
            )


@dataclass(frozen=True)
class RecordShape:
    """What a leaf's records look like beyond the flattened resource, in the order it is applied."""

    payload: Optional[WebhookPayload] = None  # the list is a webhook log: the record is each message's payload
    # relationship -> column with its id: the API's own attribute of that name when it sends one, else the
    # relationship's id, else null
    hoisted: Mapping[str, str] = field(default_factory=dict)
    derived_id: Optional[DerivedId] = None  # the API sends no id: one is derived from these fields

    def record(self, resource: Mapping[str, Any]) -> MutableMapping[str, Any]:
        record = self.payload.record(resource) if self.payload else flatten(resource)
        relationships = record.get("relationships") or {}
        for name, column in self.hoisted.items():
            related = relationships.get(name) if isinstance(relationships, Mapping) else None
            data = related.get("data") if isinstance(related, Mapping) else None
            if record.get(column) is None:
                record[column] = data.get("id") if isinstance(data, Mapping) else None
        if self.derived_id:
            record["id"] = self.derived_id.of(record)
        return record

    def kept(
        self, records: Iterable[Mapping[str, Any]], since: Optional[str], logger: logging.Logger, stream_name: str
    ) -> Iterable[Mapping[str, Any]]:
        """The records of one read worth emitting: all, but for a webhook log's repeats and strays."""
        if self.payload is None:
            return records
        return self.payload.first_deliveries(records, since, logger, stream_name)


PLAIN = RecordShape()
