"""`@step` and `@pipeline`: a pipeline is a plain function whose step calls build the graph.

    @step
    def split(df: pd.DataFrame, test_size: float = 0.2) -> tuple[pd.DataFrame, pd.DataFrame]: ...

    @pipeline
    def churn(dataset: str = "churn@latest", lr: float = 0.1):
        train_df, test_df = split(load(dataset))
        ...

Calling a pipeline's function under tracing does not run any step: each step call records a node
and returns a placeholder for its outputs. Outside a pipeline a step is an ordinary function.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import inspect
import json
import sys
import textwrap
import typing
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TypeVar, overload

from loopml.domain.dag import OutputRef, PipelineGraph, StepNode, StepSpec, check_graph
from loopml.errors import Forbidden, InvalidInput

F = TypeVar("F", bound=Callable[..., Any])


class _Trace:
    def __init__(self) -> None:
        self.nodes: list[StepNode] = []
        self.steps: dict[str, Step] = {}


_trace: ContextVar[_Trace | None] = ContextVar("loopml_pipeline_trace", default=None)


class StepOutput:
    """A step's output while the pipeline is being traced: pass it to another step."""

    def __init__(self, ref: OutputRef, n_outputs: int) -> None:
        self.ref = ref
        self._n_outputs = n_outputs

    def __iter__(self) -> Iterator[StepOutput]:
        if self._n_outputs < 2:
            raise InvalidInput(
                f"Step {self.ref.step!r} returns one value, which cannot be unpacked.",
                "Annotate the step's return type as tuple[A, B] to return several values.",
            )
        return iter([StepOutput(OutputRef(self.ref.step, i), 1) for i in range(self._n_outputs)])

    def __getitem__(self, index: int) -> StepOutput:
        return list(self)[index]

    def __bool__(self) -> bool:
        raise InvalidInput(
            f"The output of step {self.ref.step!r} is only known when the pipeline runs.",
            "Use it inside another step instead of in the pipeline function's own logic.",
        )

    def __repr__(self) -> str:
        return f"<output {self.ref.index} of step {self.ref.step!r}>"


def _count_outputs(fn: Callable[..., Any]) -> int:
    """Outputs declared by a `tuple[A, B, ...]` return annotation; otherwise one."""
    try:
        annotation = typing.get_type_hints(fn).get("return")
    except Exception:  # unresolvable names: read the annotation's text instead
        annotation = fn.__annotations__.get("return")
    if isinstance(annotation, str):
        text = annotation.replace(" ", "")
        if not text.startswith(("tuple[", "Tuple[")) or "..." in text:
            return 1
        return _top_level_items(text[text.index("[") + 1 : -1])
    if typing.get_origin(annotation) is tuple:
        args = typing.get_args(annotation)
        return len(args) if args and args[-1] is not Ellipsis else 1
    return 1


def _top_level_items(inner: str) -> int:
    """How many comma-separated items `inner` has outside any brackets."""
    depth, count = 0, 1
    for char in inner:
        if char in "[(":
            depth += 1
        elif char in "])":
            depth -= 1
        elif char == "," and depth == 0:
            count += 1
    return count


def _json_param(step: str, name: str, value: Any) -> Any:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        raise InvalidInput(
            f"Step {step!r} got parameter {name!r} of type {type(value).__name__}, which is not "
            "JSON data.",
            "Pass numbers, text, lists or dicts as parameters, and anything else as the output "
            "of another step.",
        ) from None
    return value


class Step:
    """A function that, inside a pipeline, becomes a node whose outputs are versioned."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        retries: int = 0,
        backoff_s: float = 1.0,
        cache: bool = True,
    ) -> None:
        self.fn = fn
        self.name = fn.__name__
        self.retries = retries
        self.backoff_s = backoff_s
        self.cache = cache
        self.n_outputs = _count_outputs(fn)
        self.signature = inspect.signature(fn)
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        trace = _trace.get()
        if trace is None:
            return self.fn(*args, **kwargs)
        return self._record(trace, args, kwargs)

    def _record(self, trace: _Trace, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise InvalidInput(
                f"Step {self.name!r} was called wrongly: {exc}.",
                f"Its signature is {self.name}{self.signature}.",
            ) from None
        bound.apply_defaults()
        name = self.name
        taken = {node.name for node in trace.nodes}
        suffix = 2
        while name in taken:
            name, suffix = f"{self.name}_{suffix}", suffix + 1
        params: dict[str, Any] = {}
        inputs: dict[str, OutputRef] = {}
        for arg, value in bound.arguments.items():
            if isinstance(value, StepOutput):
                inputs[arg] = value.ref
            else:
                params[arg] = _json_param(name, arg, value)
        trace.nodes.append(StepNode(name, self.fn.__qualname__, params, inputs, self.n_outputs))
        trace.steps[name] = self
        return StepOutput(OutputRef(name, 0), self.n_outputs)

    def source_digest(self) -> str:
        """Digest of the step's source code (and its name): an edit changes it."""
        try:
            source = textwrap.dedent(inspect.getsource(self.fn))
        except (OSError, TypeError):  # no source (e.g. built in a REPL): the bytecode stands in
            source = self.fn.__code__.co_code.hex()
        text = f"{self.fn.__module__}.{self.fn.__qualname__}\n{source}"
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()

    def spec(self) -> StepSpec:
        import cloudpickle

        module = sys.modules.get(self.fn.__module__)
        if module is not None and not self.fn.__module__.startswith("loopml."):
            cloudpickle.register_pickle_by_value(module)  # workers need not import the file
        return StepSpec(
            cloudpickle.dumps(self.fn),
            self.source_digest(),
            self.retries,
            self.backoff_s,
            self.cache,
        )


@overload
def step(fn: F, /) -> F: ...
@overload
def step(*, retries: int = 0, backoff_s: float = 1.0, cache: bool = True) -> Callable[[F], F]: ...
def step(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    retries: int = 0,
    backoff_s: float = 1.0,
    cache: bool = True,
) -> Any:
    """Make `fn` a pipeline step; `retries` reruns a failing step after `backoff_s`, doubling."""
    if fn is None:
        return lambda inner: Step(inner, retries=retries, backoff_s=backoff_s, cache=cache)
    return Step(fn, retries=retries, backoff_s=backoff_s, cache=cache)


class Pipeline:
    """A function of pipeline parameters whose step calls form the graph."""

    def __init__(self, fn: Callable[..., Any], name: str | None = None) -> None:
        self.fn = fn
        self.name = name or fn.__name__
        self.signature = inspect.signature(fn)
        self.source_ref: str | None = None
        """`path/to/file.py:name` when loaded from a file (set by `load_pipeline`)."""
        functools.update_wrapper(self, fn)

    def defaults(self) -> dict[str, Any]:
        return {
            name: p.default
            for name, p in self.signature.parameters.items()
            if p.default is not inspect.Parameter.empty
        }

    def coerce(self, raw: Mapping[str, str]) -> dict[str, Any]:
        """Command-line values (text) converted to each parameter's type (annotation, else the
        type of its default); a wrong name or value is an InvalidInput naming it."""
        converted: dict[str, Any] = {}
        for name, text in raw.items():
            parameter = self.signature.parameters.get(name)
            if parameter is None:
                known = ", ".join(self.signature.parameters) or "none"
                raise InvalidInput(
                    f"Pipeline {self.name!r} has no parameter {name!r}.",
                    f"Its parameters are: {known}.",
                )
            converted[name] = _convert(self.name, parameter, text)
        return converted

    def trace(self, params: dict[str, Any] | None = None) -> tuple[PipelineGraph, dict[str, Step]]:
        """The graph for these parameter values, and the step objects by node name."""
        params = dict(params or {})
        unknown = sorted(set(params) - set(self.signature.parameters))
        if unknown:
            known = ", ".join(self.signature.parameters) or "none"
            raise InvalidInput(
                f"Pipeline {self.name!r} has no parameter {unknown[0]!r}.",
                f"Its parameters are: {known}.",
            )
        try:
            bound = self.signature.bind(**params)
        except TypeError as exc:
            raise InvalidInput(
                f"Pipeline {self.name!r}: {exc}.", f"Its signature is {self.name}{self.signature}."
            ) from None
        bound.apply_defaults()
        trace = _Trace()
        token = _trace.set(trace)
        try:
            result = self.fn(**bound.arguments)
        finally:
            _trace.reset(token)
        graph = PipelineGraph(
            self.name, dict(bound.arguments), tuple(trace.nodes), _result_refs(result)
        )
        check_graph(graph)
        return graph, trace.steps

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the plain function: steps run as ordinary functions, nothing is recorded.
        `loopml.run_pipeline(pipeline, params)` runs it as a tracked, cached pipeline."""
        return self.fn(*args, **kwargs)


_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _kind_of(parameter: inspect.Parameter) -> str:
    annotation = parameter.annotation
    if isinstance(annotation, str):
        return annotation.split("|")[0].strip()
    if isinstance(annotation, type):
        return annotation.__name__
    default = parameter.default
    return type(default).__name__ if default not in (None, inspect.Parameter.empty) else "str"


def _convert(pipeline: str, parameter: inspect.Parameter, text: str) -> Any:
    kind = _kind_of(parameter)
    try:
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
        if kind == "bool":
            return _BOOLEANS[text.lower()]
        if kind in ("list", "dict"):
            return json.loads(text)
    except (ValueError, KeyError):
        raise InvalidInput(
            f"Parameter {parameter.name!r} of pipeline {pipeline!r} expects {kind}; got {text!r}.",
            f"Give a {kind} value, e.g. --param {parameter.name}=...",
        ) from None
    return text


def _result_refs(result: Any) -> Any:
    if isinstance(result, StepOutput):
        return result.ref
    if isinstance(result, tuple | list):
        return [_result_refs(item) for item in result]
    if isinstance(result, dict):
        return {key: _result_refs(value) for key, value in result.items()}
    return result


def pipeline(fn: Callable[..., Any]) -> Pipeline:
    """Make `fn` a pipeline: its parameters are the pipeline's, its step calls the graph."""
    return Pipeline(fn)


def check_pipeline_source(ref: str, roots: tuple[str, ...]) -> Path:
    """The file of pipeline `ref` when it lies inside one of `roots` (its links followed);
    Forbidden otherwise, before anything is imported. A team server runs only the pipelines its
    operator put in those folders: a loop's owner names one, and the server runs its code."""
    location = ref.rpartition(":")[0]
    shown = ", ".join(roots) or "none given"
    hint = (
        "Put the pipeline file in one of the folders the server was started with "
        "(`loopml server --pipelines DIR`), and name it by its path there."
    )
    if not location.endswith(".py"):
        raise Forbidden(
            f"This server runs pipelines only from files in its pipeline folders ({shown}); "
            f"{ref!r} names a module.",
            hint,
        )
    path = Path(location).resolve()
    if not any(path.is_relative_to(Path(root).resolve()) for root in roots):
        raise Forbidden(
            f"Pipeline file {location!r} is outside this server's pipeline folders ({shown}).",
            hint,
        )
    return path


def load_pipeline(ref: str, roots: tuple[str, ...] | None = None) -> Pipeline:
    """The pipeline named by `path/to/file.py:name` (or `package.module:name`); with `roots`,
    only a file inside one of those folders (see `check_pipeline_source`)."""
    if roots is not None:
        check_pipeline_source(ref, roots)
    location, sep, name = ref.rpartition(":")
    if not sep or not location or not name:
        raise InvalidInput(
            f"Pipeline reference {ref!r} is not FILE.py:NAME.",
            "Write e.g. examples/churn/pipeline.py:churn.",
        )
    module = _import_location(location)
    found = getattr(module, name, None)
    if not isinstance(found, Pipeline):
        what = "nothing" if found is None else type(found).__name__
        raise InvalidInput(
            f"{name!r} in {location} is {what}, not a @pipeline function.",
            "Decorate the pipeline function with @pipeline.",
        )
    found.source_ref = f"{Path(location).resolve()}:{name}" if location.endswith(".py") else ref
    return found


def _import_location(location: str) -> Any:
    if not location.endswith(".py"):
        try:
            return importlib.import_module(location)
        except Exception as exc:
            raise InvalidInput(
                f"Module {location!r} does not import: {exc}.",
                "Fix the module, or give a FILE.py path.",
            ) from None
    path = Path(location).resolve()
    if not path.is_file():
        raise InvalidInput(f"No pipeline file at {location!r}.", "Check the path.")
    module_name = "loopml_pipeline_" + hashlib.sha256(str(path).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise InvalidInput(f"{location} cannot be imported as Python.", "Give a .py file.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise InvalidInput(
            f"Pipeline file {location} does not import: {type(exc).__name__}: {exc}.",
            "Fix the error in the file (run it with python to see the traceback).",
        ) from None
    return module
