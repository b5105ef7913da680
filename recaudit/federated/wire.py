"""What crosses the wire: a Flower message's serialised size, and a copy made through its bytes.

Flower (≥ 1.20) ships a message as a tree of content-addressed objects (message → records →
arrays → chunks), each deflated to bytes; that is what the SuperLink and SuperNodes exchange.
``wire_bytes`` sums those bytes; ``wire_copy`` rebuilds the message from them, so the in-process
grid hands the client exactly what a network transport would (and nothing shared by reference).
"""

from __future__ import annotations

from flwr.app import Message


def _contents(msg: Message) -> dict[str, bytes]:
    from flwr.supercore.inflatable.inflatable_object import get_all_nested_objects

    return {oid: obj.deflate() for oid, obj in get_all_nested_objects(msg).items()}


def wire_bytes(msg: Message) -> int:
    """Serialised size of ``msg``: the deflated bytes of its whole object tree."""
    try:
        return sum(len(b) for b in _contents(msg).values())
    except ImportError:  # pragma: no cover - a Flower without the inflatable API: payload bytes only
        return sum(rec.count_bytes() for rec in msg.content.values()) if msg.has_content() else 0


def wire_copy(msg: Message) -> Message:
    """A new Message inflated from ``msg``'s serialised object tree (message id kept)."""
    from flwr.supercore.inflatable.inflatable_utils import inflate_object_from_contents

    copy = inflate_object_from_contents(msg.object_id, _contents(msg))
    copy.metadata.__dict__["_message_id"] = msg.metadata.message_id
    return copy  # type: ignore[return-value]
