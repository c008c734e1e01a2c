"""MLflow's run search syntax, translated into loopml's run query (`loopml.domain.filters`).

MLflow clients send `filter` as text and `order_by` as a list of terms:

    metrics.rmse < 1 and params.model = 'gbm' and tags."data set" != 'old'
    attributes.status = 'FINISHED' and attribute.start_time >= 1764000000000
    ["metrics.rmse ASC", "attributes.start_time DESC"]

What translates: `metric(s).`, `param(s).`, `tag(s).`, `attribute(s).`/`attr.` and the bare
attribute names; keys plain, in back-quotes or in double quotes; `=`, `!=`, `<>`, `>`, `>=`,
`<`, `<=`; comparisons joined by `and`. The attributes `run_id`, `run_name`, `status` (MLflow's
upper-case states), `start_time`, `end_time` and `created` (epoch milliseconds), and the tags
MLflow keeps for attributes (`mlflow.runName`; `mlflow.parentRunId` with `=`, the children of a
run). Anything else (`LIKE`, `ILIKE`, `IN`, `IS NULL`, `OR`, `datasets.`, other attributes) is
refused with InvalidInput naming the part, never silently dropped.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace

from loopml.domain.filters import (
    Comparison,
    FieldKind,
    FieldRef,
    OrderKey,
    RunQuery,
    Token,
    check_query,
)
from loopml.errors import InvalidInput

_KINDS = {
    "metric": FieldKind.METRICS, "metrics": FieldKind.METRICS,
    "param": FieldKind.PARAMS, "params": FieldKind.PARAMS, "parameter": FieldKind.PARAMS,
    "parameters": FieldKind.PARAMS,
    "tag": FieldKind.TAGS, "tags": FieldKind.TAGS,
    "attribute": FieldKind.ATTRIBUTES, "attributes": FieldKind.ATTRIBUTES,
    "attr": FieldKind.ATTRIBUTES, "run": FieldKind.ATTRIBUTES,
}  # fmt: skip
_ATTRIBUTES = {
    "run_id": "run_id", "run_name": "name", "status": "status", "start_time": "start_time",
    "end_time": "end_time", "created": "start_time", "Created": "start_time",
}  # fmt: skip
"""MLflow's run attributes and the loopml attribute each one is."""
PARENT_KEY = "mlflow.parentRunId"
_STATES = {"RUNNING", "FINISHED", "FAILED", "KILLED"}
_OPERATORS = {
    "=": "=", "==": "=", "!=": "!=", "<>": "!=", ">": ">", ">=": ">=", "<": "<", "<=": "<=",
}  # fmt: skip
_UNSUPPORTED_OPS = ("like", "ilike", "in", "not", "is", "rlike", "between")
_ONLY = "loopml compares with =, !=, <, <=, > and >=, joined by 'and'"

_TOKEN_RE = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<field>[A-Za-z_]\w*\.(?:`[^`]*`|"[^"]*"|[\w\-./:]+))
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
  | (?P<op>==|!=|<>|>=|<=|=|>|<)
  | (?P<word>[A-Za-z_]\w*)
  | (?P<other>.)
    """,
    re.VERBOSE,
)


def _tokens(text: str) -> list[Token]:
    return [
        Token(m.lastgroup or "", m.group(), m.start())
        for m in _TOKEN_RE.finditer(text)
        if m.lastgroup != "space"
    ]


def _refuse(text: str, token: Token | None, problem: str, hint: str) -> InvalidInput:
    where = f" at {token.text!r} (position {token.pos})" if token is not None else ""
    return InvalidInput(f"The MLflow filter {text!r} {problem}{where}.", hint)


def _field(text: str, token: Token) -> FieldRef:
    """The loopml field an MLflow identifier names (`metrics.f1`, `status`, `tags."a b"`)."""
    if token.kind == "word":
        prefix, key = "attributes", token.text
    else:
        prefix, key = token.text.split(".", 1)
    kind = _KINDS.get(prefix.lower())
    if kind is None:
        raise _refuse(
            text, token, f"names {prefix!r}, which loopml cannot search",
            "Search metrics., params., tags. or attributes. (run_id, run_name, status, "
            "start_time, end_time).",
        )  # fmt: skip
    if key[:1] in '`"' and len(key) >= 2 and key[-1] == key[0]:
        key = key[1:-1]
    if kind is FieldKind.TAGS and key == "mlflow.runName":
        return FieldRef(FieldKind.ATTRIBUTES, "name")
    if kind is FieldKind.ATTRIBUTES:
        if key not in _ATTRIBUTES:
            raise _refuse(
                text, token, f"names the run attribute {key!r}, which loopml does not keep",
                f"Search one of {', '.join(sorted(set(_ATTRIBUTES) - {'Created'}))}.",
            )  # fmt: skip
        return FieldRef(kind, _ATTRIBUTES[key])
    if not key:
        raise _refuse(text, token, "has an empty key", "Name the key: metrics.f1.")
    return FieldRef(kind, key)


def _value(text: str, field: FieldRef, token: Token) -> float | str:
    if token.kind == "string":
        value: float | str = re.sub(r"\\(.)", r"\1", token.text[1:-1])
    elif token.kind == "number":
        value = float(token.text)
    else:
        raise _refuse(text, token, "has no number or quoted text where a value belongs",
                      "Quote text: params.model = 'gbm'.")  # fmt: skip
    if field.kind is FieldKind.METRICS and isinstance(value, str):
        raise _refuse(text, token, f"compares metric {field.key!r} with text",
                      f"Compare it with a number: metrics.{field.key} > 0.5.")  # fmt: skip
    if field.kind is FieldKind.TAGS and isinstance(value, float):
        value = token.text  # MLflow's tags are text; an unquoted number is its digits
    if field == FieldRef(FieldKind.ATTRIBUTES, "status"):
        if not isinstance(value, str) or value.upper() not in _STATES:
            raise _refuse(text, token, "compares the status with something that is not one",
                          f"Use one of {', '.join(sorted(_STATES))}.")  # fmt: skip
        value = value.lower()
    if field.kind is FieldKind.ATTRIBUTES and field.key in ("run_id", "name"):
        value = value if isinstance(value, str) else token.text
    return value


def _operator(text: str, tokens: list[Token], i: int) -> str:
    token = tokens[i] if i < len(tokens) else None
    if token is not None and token.kind == "op":
        return _OPERATORS[token.text]
    if token is not None and token.kind == "word" and token.text.lower() in _UNSUPPORTED_OPS:
        raise _refuse(text, token, f"uses {token.text.upper()}, which loopml does not support",
                      f"{_ONLY}; run one search per value for IN.")  # fmt: skip
    raise _refuse(text, token, "has no comparison where one belongs", f"{_ONLY}.")


def parse_mlflow_filter(text: str | None) -> tuple[tuple[Comparison, ...], str | None]:
    """The comparisons of an MLflow filter, and the parent run it asks the children of
    (`tags.mlflow.parentRunId = 'ID'`), if any; InvalidInput naming what does not translate."""
    if text is None or not text.strip():
        return (), None
    tokens, clauses, parent = _tokens(text), [], None
    i = 0
    while True:
        first = tokens[i] if i < len(tokens) else None
        if first is None or first.kind not in ("field", "word"):
            raise _refuse(text, first, "has no field where a comparison begins",
                          "Begin each comparison with a field: metrics.f1 > 0.8.")  # fmt: skip
        op = _operator(text, tokens, i + 1)
        if i + 2 >= len(tokens):
            raise _refuse(text, None, "ends where a value belongs", "Give a value.")
        if first.kind == "field" and first.text.split(".", 1)[1].strip('`"') == PARENT_KEY:
            if op != "=" or tokens[i + 2].kind != "string":
                raise _refuse(text, first, "compares the parent run other than by =",
                              "Write tags.mlflow.parentRunId = 'RUN_ID'.")  # fmt: skip
            parent = tokens[i + 2].text[1:-1]
        else:
            field = _field(text, first)
            clauses.append(Comparison(field, op, _value(text, field, tokens[i + 2])))
        i += 3
        if i >= len(tokens):
            return tuple(clauses), parent
        joiner = tokens[i]
        if joiner.kind != "word" or joiner.text.lower() != "and":
            raise _refuse(text, joiner, "joins comparisons other than by 'and'", f"{_ONLY}.")
        i += 1


def parse_mlflow_order_by(terms: list[str]) -> tuple[OrderKey, ...]:
    """`["metrics.rmse ASC", "start_time DESC"]` as loopml's order keys."""
    keys = []
    for term in terms:
        tokens = _tokens(term)
        if not tokens or tokens[0].kind not in ("field", "word") or len(tokens) > 2:
            raise _refuse(term, None, "is not an order term",
                          "Order by a field and ASC or DESC: 'metrics.rmse DESC'.")  # fmt: skip
        direction = tokens[1].text.lower() if len(tokens) == 2 else "asc"
        if direction not in ("asc", "desc"):
            raise _refuse(term, tokens[1], "orders other than ASC or DESC", "Write ASC or DESC.")
        keys.append(OrderKey(_field(term, tokens[0]), direction == "desc"))
    return tuple(keys)


def mlflow_run_query(project: str, text: str | None, order_by: list[str]) -> RunQuery:
    """The loopml query of an MLflow search over `project` (checked: see `check_query`)."""
    where, parent = parse_mlflow_filter(text)
    query = RunQuery(project, where, parse_mlflow_order_by(order_by))
    return check_query(replace(query, parent_id=parent) if parent else query)


_NAME_CLAUSE = re.compile(
    r"\s*(?:attributes?\.)?name\s+(=|!=|LIKE|ILIKE)\s+'((?:[^'\\]|\\.)*)'\s*", re.IGNORECASE
)


def experiment_names(text: str | None) -> Callable[[str], bool]:
    """Whether an experiment's name meets an MLflow experiment filter: comparisons of `name`
    (=, !=, LIKE and ILIKE with % and _) joined by `and`; InvalidInput for anything else."""
    tests: list[Callable[[str], bool]] = []
    for clause in re.split(r"\s+and\s+", text or "", flags=re.IGNORECASE):
        if not clause.strip():
            continue
        matched = _NAME_CLAUSE.fullmatch(clause)
        if matched is None:
            raise InvalidInput(
                f"loopml cannot filter experiments by {clause.strip()[:200]!r}.",
                "Filter by name: name = 'churn', name LIKE 'churn%'.",
            )
        tests.append(_name_test(matched.group(1).upper(), re.sub(r"\\(.)", r"\1", matched[2])))
    return lambda name: all(test(name) for test in tests)


def _name_test(op: str, value: str) -> Callable[[str], bool]:
    if op in ("=", "!="):
        return lambda name: (name == value) == (op == "=")
    pattern = "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in value)
    compiled = re.compile(pattern, re.DOTALL | (re.IGNORECASE if op == "ILIKE" else 0))
    return lambda name: compiled.fullmatch(name) is not None
