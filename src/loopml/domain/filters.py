"""The run filter and ordering language, parsed into values; never evaluated.

    filter   := clause ( "and" clause )*
    clause   := field op value
    field    := ("metrics" | "params" | "tags" | "attributes") "." key
    key      := name | `back-quoted name`       name: letters, digits, _ - . / :
    op       := "=" | "==" | "!=" | "<>" | ">" | ">=" | "<" | "<="
    value    := number | 'string' | "string"

    order_by := term ( "," term )*
    term     := ["-"] field [ "asc" | "desc" ]

Metrics compare numerically; params compare as numbers when the value is a number and as text
when it is quoted; tags compare as text. Attributes are `status`, `name`, `run_id`, `start_time`,
`end_time`. A malformed filter raises InvalidInput whose message points at the bad token.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from loopml.errors import InvalidInput


class FieldKind(StrEnum):
    METRICS = "metrics"
    PARAMS = "params"
    TAGS = "tags"
    ATTRIBUTES = "attributes"


ATTRIBUTES = frozenset({"status", "name", "run_id", "start_time", "end_time"})
OPERATORS = {
    "=": "=",
    "==": "=",
    "!=": "!=",
    "<>": "!=",
    ">": ">",
    ">=": ">=",
    "<": "<",
    "<=": "<=",
}


@dataclass(frozen=True)
class FieldRef:
    kind: FieldKind
    key: str

    def __str__(self) -> str:
        return f"{self.kind}.{self.key}"


@dataclass(frozen=True)
class Comparison:
    field: FieldRef
    op: str
    value: float | str


@dataclass(frozen=True)
class OrderKey:
    field: FieldRef
    descending: bool


@dataclass(frozen=True)
class RunQuery:
    """What to search: one project, every comparison true, in this order (newest first after)."""

    project: str
    where: tuple[Comparison, ...] = ()
    order_by: tuple[OrderKey, ...] = ()
    parent_id: str | None = None
    top_level_only: bool = False


_TOKEN_RE = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w.]))
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<op>==|!=|<>|>=|<=|=|>|<)
  | (?P<comma>,)
  | (?P<minus>-)
  | (?P<field>[A-Za-z_]+\.(?:`[^`]+`|[\w\-./:]+))
  | (?P<word>[A-Za-z_]\w*)
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class Token:
    """One token of a filter: its kind (the name of its group in the pattern), text, place."""

    kind: str
    text: str
    pos: int


def _error(text: str, pos: int, problem: str, hint: str) -> InvalidInput:
    pointer = " " * pos + "^"
    return InvalidInput(f"{problem} at position {pos}:\n  {text}\n  {pointer}", hint)


_FILTER_HINT = (
    "Write comparisons joined by 'and', such as: metrics.f1 > 0.8 and params.model = 'gbm'."
)


def _tokens(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if match is None:
            raise _error(text, pos, f"Unexpected character {text[pos]!r}", _FILTER_HINT)
        kind = match.lastgroup or ""
        if kind != "space":
            tokens.append(Token(kind, match.group(), pos))
        pos = match.end()
    return tokens


def _field(text: str, token: Token) -> FieldRef:
    prefix, key = token.text.split(".", 1)
    aliases = {"metric": "metrics", "param": "params", "tag": "tags", "attribute": "attributes"}
    prefix = aliases.get(prefix.lower(), prefix.lower())
    if prefix not in FieldKind.__members__.values():
        raise _error(
            text,
            token.pos,
            f"Unknown field {token.text!r}",
            "Fields start with metrics., params., tags. or attributes.",
        )
    if key.startswith("`"):
        key = key[1:-1]
    kind = FieldKind(prefix)
    if kind is FieldKind.ATTRIBUTES and key not in ATTRIBUTES:
        raise _error(
            text,
            token.pos,
            f"Unknown attribute {key!r}",
            f"Attributes are {', '.join(sorted(ATTRIBUTES))}.",
        )
    return FieldRef(kind, key)


def _unquote(literal: str) -> str:
    body = literal[1:-1]
    return re.sub(r"\\(.)", r"\1", body)


def _value(text: str, field: FieldRef, token: Token) -> float | str:
    if token.kind == "string":
        return _unquote(token.text)
    if token.kind != "number":
        raise _error(
            text,
            token.pos,
            f"Expected a number or a quoted string, got {token.text!r}",
            "Quote text values: params.model = 'gbm'.",
        )
    if field.kind is FieldKind.TAGS:
        raise _error(
            text,
            token.pos,
            f"Tag {field.key!r} is text and cannot be compared with a number",
            f"Quote the value: tags.{field.key} = '{token.text}'.",
        )
    return float(token.text)


def _check_kind(text: str, field: FieldRef, value: float | str, pos: int) -> None:
    if field.kind is FieldKind.METRICS and isinstance(value, str):
        raise _error(
            text,
            pos,
            f"Metric {field.key!r} is a number and cannot be compared with text",
            f"Compare it with a number: metrics.{field.key} > 0.5.",
        )


def _expect(text: str, tokens: list[Token], i: int, kind: str, what: str) -> Token:
    """Token `i`, which must be of `kind`; otherwise an error pointing at it (or at the end)."""
    if i >= len(tokens):
        raise _error(text, len(text), f"The filter ends where {what} was expected", _FILTER_HINT)
    token = tokens[i]
    if kind and token.kind != kind:
        raise _error(text, token.pos, f"Expected {what}, got {token.text!r}", _FILTER_HINT)
    return token


def _clause(text: str, tokens: list[Token], i: int) -> Comparison:
    field = _field(text, _expect(text, tokens, i, "field", "a field such as metrics.f1"))
    op_tok = _expect(text, tokens, i + 1, "op", "an operator (=, !=, >, >=, <, <=)")
    value_tok = _expect(text, tokens, i + 2, "", "a value")
    value = _value(text, field, value_tok)
    _check_kind(text, field, value, value_tok.pos)
    return Comparison(field, OPERATORS[op_tok.text], value)


def parse_filter(text: str | None) -> tuple[Comparison, ...]:
    """The comparisons of a filter string; an empty or None filter matches every run."""
    if text is None or not text.strip():
        return ()
    tokens = _tokens(text)
    clauses: list[Comparison] = []
    i = 0
    while True:
        clauses.append(_clause(text, tokens, i))
        i += 3
        if i >= len(tokens):
            return tuple(clauses)
        joiner = tokens[i]
        if joiner.kind != "word" or joiner.text.lower() != "and":
            problem = f"Expected 'and' between comparisons, got {joiner.text!r}"
            hint = _FILTER_HINT
            if joiner.kind == "word" and joiner.text.lower() == "or":
                hint = "Only 'and' is supported; run two searches for an 'or'."
            raise _error(text, joiner.pos, problem, hint)
        i += 1


def parse_order_by(text: str | None) -> tuple[OrderKey, ...]:
    """Order terms such as `-metrics.f1` or `metrics.f1 desc, params.lr`."""
    if text is None or not text.strip():
        return ()
    keys: list[OrderKey] = []
    hint = "Order by fields such as -metrics.f1 (descending) or 'metrics.f1 asc, params.lr'."
    for term in _split_terms(text, _tokens(text), hint):
        descending = False
        if term[0].kind == "minus":
            descending, term = True, term[1:]
        if not term or term[0].kind != "field":
            pos = term[0].pos if term else len(text)
            raise _error(text, pos, "Expected a field to order by", hint)
        field = _field(text, term[0])
        if len(term) == 2 and term[1].kind == "word" and term[1].text.lower() in ("asc", "desc"):
            descending = descending != (term[1].text.lower() == "desc")
        elif len(term) > 1:
            raise _error(text, term[1].pos, f"Unexpected {term[1].text!r}", hint)
        keys.append(OrderKey(field, descending))
    return tuple(keys)


def _split_terms(text: str, tokens: list[Token], hint: str) -> list[list[Token]]:
    terms: list[list[Token]] = [[]]
    for token in tokens:
        if token.kind == "comma":
            terms.append([])
        else:
            terms[-1].append(token)
    for term in terms:
        if not term:
            raise _error(text, len(text), "An order term is empty", hint)
    return terms


MAX_CLAUSES = 50


def check_query(query: RunQuery) -> RunQuery:
    """`query` if it is one the parser could have made (for a query that arrives already built,
    as JSON); else InvalidInput naming the part."""
    import math

    if len(query.where) + len(query.order_by) > MAX_CLAUSES:
        raise InvalidInput(
            f"The query has over {MAX_CLAUSES} clauses.", "Narrow it in fewer comparisons."
        )
    fields = [c.field for c in query.where] + [k.field for k in query.order_by]
    for field in fields:
        if field.kind is FieldKind.ATTRIBUTES and field.key not in ATTRIBUTES:
            raise InvalidInput(
                f"Unknown attribute {field.key!r}.",
                f"Attributes are {', '.join(sorted(ATTRIBUTES))}.",
            )
        if not field.key or len(field.key) > 250:
            raise InvalidInput(f"The field key {field.key[:40]!r}... is empty or too long.", "")
    for cmp in query.where:
        if cmp.op not in OPERATORS.values():
            raise InvalidInput(f"Unknown operator {cmp.op!r}.", _FILTER_HINT)
        if isinstance(cmp.value, float) and not math.isfinite(cmp.value):
            raise InvalidInput(f"{cmp.field} is compared with {cmp.value}.", "Use a finite number.")
        if cmp.field.kind is FieldKind.METRICS and isinstance(cmp.value, str):
            raise InvalidInput(f"Metric {cmp.field.key!r} compares with numbers only.", "")
        if cmp.field.kind is FieldKind.TAGS and not isinstance(cmp.value, str):
            raise InvalidInput(f"Tag {cmp.field.key!r} compares with text only.", "")
    return query


def time_value(field: FieldRef, value: float | str) -> int:
    """A time a filter compares with, in epoch microseconds: given as epoch milliseconds or
    ISO-8601 text."""
    from datetime import datetime

    from loopml.domain.epoch_us import datetime_to_us

    if isinstance(value, float):
        return int(value * 1000)
    try:
        return datetime_to_us(datetime.fromisoformat(value))
    except ValueError as exc:
        raise InvalidInput(
            f"attributes.{field.key} = {value!r} is not a time.",
            "Give epoch milliseconds or an ISO time such as '2026-11-28T13:00:00+00:00'.",
        ) from exc


def check_page(limit: int, offset: int) -> None:
    """Refuse a page of a search that cannot be answered."""
    if limit < 1 or offset < 0:
        raise InvalidInput(
            f"Page limit {limit} / offset {offset} is out of range.",
            "Use a limit of at least 1 and an offset of at least 0.",
        )
