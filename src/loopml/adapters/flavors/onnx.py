"""The onnx flavor: a model exported to ONNX (skl2onnx, torch.onnx, tf2onnx), run by onnxruntime.

`save` checks the model with `onnx.checker` and writes `model.onnx` (deterministic protobuf
bytes, so the same model gives the same digest; an exporter that names each graph at random,
as skl2onnx does without `name=`, makes each export another file) with an `info` recording
the tensor signature: each graph input and output with its name, element type (a numpy dtype
name) and shape (None for a symbolic size such as the rows), the opsets, which output `predict`
gives and which `predict_proba` gives, the classes, and the model's `metadata_props` as
`metadata` (where `loopml models compile` notes the source and parity). `tensors` in the info
is the model as loopml calls it (its graph inputs; `prediction` and `probabilities` out): the
registry records it in the version's signature, and the model server reports it as the V2 model
metadata.

`load` builds an onnxruntime InferenceSession from the bytes and hands back an `OnnxModel`
(`loopml.adapters.flavors.onnx_model`) that predicts from a data frame. Nothing is unpickled,
whatever `trust_pickle` says: an ONNX file is a graph of onnxruntime's own operators, and a
session made from bytes reads no external data file (onnxruntime refuses it without a model
path), so loading one runs no code from the file and reads nothing beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loopml.adapters.flavors.base import FlavorModel, loaded_class, prepare_empty_directory
from loopml.adapters.flavors.onnx_model import OnnxClassifier, OnnxModel, Tensor
from loopml.domain.signature import PREDICTION_COLUMN
from loopml.errors import IntegrityError, InvalidInput, NotFound

MODEL_FILE = "model.onnx"
INFO_SCHEMA_VERSION = 1
PROBABILITIES = "probabilities"
"""What loopml calls a classifier's probabilities (the model server's V2 output of that name)."""
INSTALL = "pip install 'loopml[onnx]'"
_CLASS_LABELS = ("classlabels_int64s", "classlabels_ints", "classlabels_strings")
"""Attributes of ai.onnx.ml nodes (ZipMap, LinearClassifier, TreeEnsembleClassifier, ...) that
list a classifier's classes in the order of its probability columns."""


class OnnxFlavor:
    """Saves `onnx.ModelProto`s (and loaded ONNX models) to `model.onnx`; loads them into
    onnxruntime."""

    name = "onnx"
    files = (MODEL_FILE,)
    step_values = True
    """A step returning a ModelProto stores it here: the same model writes the same bytes, and
    reading it builds no Python object from the file. The next step gets it loaded (an
    `OnnxModel`, which predicts, registers as this flavor, and keeps `model_bytes`)."""

    def accepts(self, model: object) -> bool:
        proto = loaded_class("onnx", "ModelProto")
        return (proto is not None and isinstance(model, proto)) or isinstance(model, OnnxModel)

    def check_shared(self, info: dict[str, Any], model_types: tuple[str, ...]) -> None:
        """A team server may load any ONNX model: `model_types` names the Python packages whose
        classes a server lets a registrant's file build, and an ONNX file builds none. Its
        operators are onnxruntime's own (a custom-operator domain fails to load rather than
        running code), and a session made from bytes reads no external data."""

    def save(self, model: Any, directory: Path) -> dict[str, Any]:
        onnx = _import("onnx", "Saving an ONNX model needs the onnx package, which")
        proto = onnx.load_from_string(model.model_bytes) if isinstance(model, OnnxModel) else model
        _check(onnx, proto)
        prepare_empty_directory(directory)
        (directory / MODEL_FILE).write_bytes(proto.SerializeToString(deterministic=True))
        return {
            "flavor": self.name,
            "schema_version": INFO_SCHEMA_VERSION,
            **describe(onnx, proto),
            "onnx_version": onnx.__version__,
        }

    def load(self, directory: Path, info: dict[str, Any], *, trust_pickle: bool) -> FlavorModel:
        """An InferenceSession from the file's bytes; `trust_pickle` is unused (no pickle here)."""
        ort = _import("onnxruntime", "This model version is an ONNX model, and onnxruntime")
        path = directory / MODEL_FILE
        if not path.is_file():
            others = sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []
            raise NotFound(
                f"The ONNX model file {path} is missing (the folder holds {others}).",
                "Check that the model version's artifacts were downloaded completely, and that "
                "it was registered with the onnx flavor.",
            )
        data = path.read_bytes()
        options = ort.SessionOptions()
        options.log_severity_level = 4  # a failure is reported below, as an IntegrityError
        try:
            session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime's errors (Fail, InvalidProtobuf, ...) are bare
            raise IntegrityError(
                f"The model file {path} is {_looks_like(data)}: onnxruntime cannot load it "
                f"({str(error).splitlines()[0][:300]}).",
                "The file is damaged or was replaced; register the model again.",
            ) from None
        return OnnxFlavorModel(raw=_model(session, data, info), flavor=self.name)


@dataclass(frozen=True)
class OnnxFlavorModel(FlavorModel):
    """A loaded ONNX model; a classifier's graph gives both of a batch's outputs in one run."""

    def predict_with_proba(self, frame: Any) -> tuple[Any, Any]:
        if isinstance(self.raw, OnnxClassifier):
            return self.raw.predict_with_proba(frame)
        return self.predict(frame), self.predict_proba(frame)


def describe(onnx: Any, proto: Any) -> dict[str, Any]:
    """The tensor signature, opsets and output roles of a checked ModelProto."""
    graph = proto.graph
    initializers = {tensor.name for tensor in graph.initializer}
    inputs = [_tensor(onnx, v) for v in graph.input if v.name not in initializers]
    outputs = [_tensor(onnx, v) for v in graph.output]
    predict, proba = _roles(outputs)
    classes = _classes(onnx, graph, proba) if proba is not None else None
    if proba is not None and not classes and proba.shape and isinstance(proba.shape[-1], int):
        classes = list(range(proba.shape[-1]))
    served = [_served_prediction(predict)]
    if proba is not None:
        width = len(classes) if classes else None
        dtype = "float32" if proba.kind == "map_sequence" else proba.dtype
        served.append({"name": PROBABILITIES, "dtype": dtype, "shape": [None, width]})
    opsets: dict[str, int] = {}
    for opset in proto.opset_import:
        domain = opset.domain or "ai.onnx"
        opsets[domain] = max(opsets.get(domain, 0), int(opset.version))
    return {
        "inputs": [t.to_dict() for t in inputs],
        "outputs": [t.to_dict() for t in outputs],
        "predict_output": predict.name,
        "proba_output": None if proba is None else proba.name,
        "classes": classes,
        "opsets": dict(sorted(opsets.items())),
        "ir_version": int(proto.ir_version),
        "producer": f"{proto.producer_name} {proto.producer_version}".strip(),
        "tensors": {"inputs": [_plain(t) for t in inputs], "outputs": served},
        **_metadata(proto),
    }


def _metadata(proto: Any) -> dict[str, Any]:
    """The model's `metadata_props` (key -> text), when it has any: what its exporter noted,
    such as the source and parity figures `loopml models compile` keeps there."""
    found = {entry.key: entry.value for entry in proto.metadata_props}
    return {"metadata": dict(sorted(found.items()))} if found else {}


def _plain(tensor: Tensor) -> dict[str, Any]:
    return {k: v for k, v in tensor.to_dict().items() if k != "kind"}


def _served_prediction(predict: Tensor) -> dict[str, Any]:
    """`predict`'s output as the model gives it: a trailing size of 1 squeezed away."""
    shape = predict.shape
    if shape is not None and len(shape) == 2 and shape[1] == 1:
        shape = shape[:1]
    return {
        "name": PREDICTION_COLUMN,
        "dtype": predict.dtype,
        "shape": None if shape is None else list(shape),
    }


def _check(onnx: Any, proto: Any) -> None:
    try:
        onnx.checker.check_model(proto)
    except (onnx.checker.ValidationError, ValueError) as error:
        raise InvalidInput(
            f"The ONNX model is not valid: {str(error).strip().splitlines()[0][:300]}",
            "Export the model again (check it with onnx.checker.check_model), with an opset "
            "onnxruntime supports.",
        ) from None
    external = [t.name for t in _all_tensors(proto.graph) if t.data_location == 1]  # EXTERNAL
    if external:
        raise InvalidInput(
            f"The ONNX model keeps tensors in external files ({external[:3]}); onnxruntime loads "
            "a registered model from its own bytes only.",
            "Load the model with onnx.load(path, load_external_data=True) before registering "
            "it (models over 2 GB cannot be registered).",
        )
    if not proto.graph.output:
        raise InvalidInput("The ONNX model has no outputs.", "Export a graph with an output.")


def _all_tensors(graph: Any) -> list[Any]:
    """Initializers and tensor attributes of `graph` and its subgraphs (If, Loop, Scan bodies)."""
    found = list(graph.initializer)
    for node in graph.node:
        for attribute in node.attribute:
            found.extend(
                ([attribute.t] if attribute.HasField("t") else []) + list(attribute.tensors)
            )
            for sub in ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs):
                found.extend(_all_tensors(sub))
    return found


def _tensor(onnx: Any, value: Any) -> Tensor:
    """A graph input or output (a ValueInfoProto) as a `Tensor`."""
    kind = value.type.WhichOneof("value")
    if kind == "tensor_type":
        tensor_type = value.type.tensor_type
        shape = None
        if tensor_type.HasField("shape"):
            shape = tuple(
                d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim
            )
        return Tensor(value.name, _dtype_name(onnx, tensor_type.elem_type), shape)
    if kind == "sequence_type":
        element = value.type.sequence_type.elem_type
        if element.WhichOneof("value") == "map_type":
            inner = element.map_type.value_type.tensor_type.elem_type
            return Tensor(value.name, _dtype_name(onnx, inner), (None,), "map_sequence")
    return Tensor(value.name, None, None, "other")


def _dtype_name(onnx: Any, elem_type: int) -> str:
    try:
        return str(onnx.helper.tensor_dtype_to_np_dtype(elem_type).name)
    except (KeyError, TypeError, ValueError):  # bfloat16, float8: no plain numpy dtype
        return str(onnx.TensorProto.DataType.Name(elem_type).lower())


def _roles(outputs: list[Tensor]) -> tuple[Tensor, Tensor | None]:
    """(what `predict` gives, what `predict_proba` gives): a label output and a probabilities
    output (a tensor, or a ZipMap's dicts) make a classifier (skl2onnx names them `label` and
    `probabilities`, or `output_label` and `output_probability`); else the first output."""
    proba = next(
        (o for o in outputs if o.kind == "map_sequence" or "probabilit" in o.name.lower()), None
    )
    label = next(
        (o for o in outputs if o.kind == "tensor" and o.name.lower().endswith("label")), None
    )
    if proba is not None and label is not None:
        return label, proba
    return outputs[0], None


def _classes(onnx: Any, graph: Any, proba: Tensor) -> list[Any] | None:
    """The classes in probability-column order, from the ZipMap making `proba` or else the first
    classifier node that lists them."""
    nodes = sorted(graph.node, key=lambda n: proba.name not in n.output)  # the producer first
    for node in nodes:
        for attribute in node.attribute:
            if attribute.name in _CLASS_LABELS:
                values = onnx.helper.get_attribute_value(attribute)
                return [v.decode() if isinstance(v, bytes) else int(v) for v in values]
    return None


def _model(session: Any, data: bytes, info: dict[str, Any]) -> OnnxModel:
    """The loaded model the info describes, once the file is found to be the model it was."""
    try:
        inputs = [Tensor.from_dict(item) for item in info["inputs"]]
        predict, proba = str(info["predict_output"]), info.get("proba_output")
        outputs = {str(item["name"]): Tensor.from_dict(item) for item in info["outputs"]}
    except (KeyError, TypeError) as error:
        raise InvalidInput(
            f"The onnx flavor info lacks {error} (it has {sorted(info)}).",
            "Pass the info dict returned by save when the model was registered.",
        ) from None
    found = [i.name for i in session.get_inputs()], sorted(o.name for o in session.get_outputs())
    if found != ([t.name for t in inputs], sorted(outputs)):
        raise IntegrityError(
            f"The model file's inputs and outputs {found} are not those recorded at "
            f"registration {([t.name for t in inputs], sorted(outputs))}.",
            "The file was replaced after it was registered; register the model again.",
        )
    if proba is None:
        return OnnxModel(session, data, inputs, predict)
    classes = info.get("classes") or []
    return OnnxClassifier(
        session, data, inputs, predict, proba=outputs[str(proba)], classes=classes
    )


def _looks_like(data: bytes) -> str:
    """What a file that is not an ONNX model seems to be, to name the problem."""
    if not data:
        return "empty"
    if data.startswith(b"PK\x03\x04"):
        return "a zip archive (a skops file, as the sklearn flavor writes), not an ONNX model"
    if data[:1] == b"\x80":
        return "a Python pickle (as the python flavor writes), not an ONNX model"
    return "not a readable ONNX model"


def _import(module: str, what: str) -> Any:
    """`module`, or InvalidInput naming the extra that installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise InvalidInput(f"{what} is not installed.", INSTALL) from None
