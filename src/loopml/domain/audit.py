"""The audit trail's hash chain: each event's hash covers its content and the previous hash.

Editing, inserting or deleting any stored event changes a hash that every later event depends on,
so `verify_chain` finds the first place the trail was altered.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from loopml.domain.hashing import canonical_json, digest_bytes
from loopml.domain.records import Event
from loopml.errors import InvalidInput

GENESIS_HASH = "blake3:" + "0" * 64
"""The `prev_hash` of the first event."""


def event_hash(
    prev_hash: str,
    *,
    seq: int,
    time: datetime,
    action: str,
    entity: str,
    actor: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> str:
    """The chained hash of one event."""
    body = {
        "prev": prev_hash,
        "seq": seq,
        "time": time.isoformat(timespec="microseconds"),
        "action": action,
        "entity": entity,
        "actor": actor,
        "before": before,
        "after": after,
    }
    return digest_bytes(canonical_json(body))


@dataclass(frozen=True)
class ChainVerdict:
    ok: bool
    checked: int
    first_bad_seq: int | None = None
    reason: str = ""


def verify_chain(events: Iterable[Event]) -> ChainVerdict:
    """Check every event's hash and link, in order. Events need the fields of `Event`."""
    prev, expected_seq, checked = GENESIS_HASH, None, 0
    for ev in events:
        if expected_seq is not None and ev.seq != expected_seq:
            return ChainVerdict(False, checked, ev.seq, f"event {expected_seq} is missing")
        if ev.prev_hash != prev:
            return ChainVerdict(False, checked, ev.seq, "link to the previous event is broken")
        recomputed = event_hash(
            ev.prev_hash,
            seq=ev.seq,
            time=ev.time,
            action=ev.action,
            entity=ev.entity,
            actor=ev.actor,
            before=ev.before,
            after=ev.after,
        )
        if recomputed != ev.hash:
            return ChainVerdict(False, checked, ev.seq, "content does not match its hash")
        prev, expected_seq, checked = ev.hash, ev.seq + 1, checked + 1
    return ChainVerdict(True, checked)


@dataclass(frozen=True)
class Checkpoint:
    """The chain's head at some moment (`seq:hash`), kept outside the database (a CI log, a
    ticket, another system). A chain that still holds this event with this hash was not cut or
    rewritten up to it; one that does not was."""

    seq: int
    hash: str

    def text(self) -> str:
        return f"{self.seq}:{self.hash}"


def parse_checkpoint(text: str) -> Checkpoint:
    seq, sep, digest = text.strip().partition(":")
    if not sep or not seq.isdigit() or not digest.startswith("blake3:"):
        raise InvalidInput(
            f"{text!r} is not an audit checkpoint.",
            "Give the SEQ:HASH that `loopml audit head` printed, e.g. 42:blake3:ab12...",
        )
    return Checkpoint(int(seq), digest)


def verify_with_checkpoint(events: Iterable[Event], checkpoint: Checkpoint) -> ChainVerdict:
    """`verify_chain`, and the checkpointed event must still be there, unchanged: so removing
    the newest events (which leaves a valid, shorter chain) is found too."""
    seen: Event | None = None

    def watch(stream: Iterable[Event]) -> Iterable[Event]:
        nonlocal seen
        for ev in stream:
            if ev.seq == checkpoint.seq:
                seen = ev
            yield ev

    verdict = verify_chain(watch(events))
    if not verdict.ok:
        return verdict
    if seen is None:
        return ChainVerdict(
            False,
            verdict.checked,
            checkpoint.seq,
            f"event {checkpoint.seq} of the checkpoint is gone: the newest events were removed",
        )
    if seen.hash != checkpoint.hash:
        return ChainVerdict(
            False, verdict.checked, checkpoint.seq, "the chain was rewritten up to the checkpoint"
        )
    return verdict
