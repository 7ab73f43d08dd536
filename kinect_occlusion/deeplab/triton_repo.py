"""A Triton Inference Server model repository for the coarse model (``kinect-occlusion export-triton``).

Layout written (``NAME`` defaults to ``deeplab``)::

    OUT/NAME/config.pbtxt      dynamic batching, a queue that rejects stale requests, instance groups
    OUT/NAME/1/model.onnx      N×3×S×S normalised letterbox → N×S×S occlusion probability
    OUT/NAME/1/model.py        only with backend "python": runs model.onnx through onnxruntime

``onnx`` is for a real Triton (its ONNX Runtime backend, official container / Kubernetes);
``python`` is for servers without that backend (the pytriton tritonserver used in the tests).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .model import LoadedModel
from .onnx_export import INPUT_NAME, OUTPUT_NAME, export_onnx

BACKENDS = ("onnx", "python")
PYTHON_MODEL = Path(__file__).with_name("triton_model.py")


@dataclass(frozen=True)
class TritonModelSpec:
    """What ``config.pbtxt`` says: batching, queueing and instances.

    Attributes:
        name: model name in the repository (and in ``deeplab.triton_model``).
        input_size: S of the S×S letterbox the model takes.
        backend: ``onnx`` (platform onnxruntime_onnx) or ``python`` (model.py over onnxruntime).
        max_batch: largest batch Triton forms.
        preferred_batch: batch sizes the scheduler aims for.
        max_queue_delay_us: how long a request may wait for a batch to fill.
        queue_timeout_us: a request queued longer is rejected (stale frame), never run late.
        instances: model instances (copies) per device.
        kind: ``KIND_CPU`` or ``KIND_GPU``.
        threads: onnxruntime intra-op threads per instance (0: its default).
        input_name, output_name: tensor names (the coarse model's by default).
        input_dims, output_dims: per-item dims (None: the coarse model's 3×S×S and S×S).
    """

    name: str = "deeplab"
    input_size: int = 512
    backend: str = "onnx"
    max_batch: int = 8
    preferred_batch: tuple[int, ...] = (4, 8)
    max_queue_delay_us: int = 2000
    queue_timeout_us: int = 200_000
    instances: int = 1
    kind: str = "KIND_CPU"
    threads: int = 0
    input_name: str = INPUT_NAME
    output_name: str = OUTPUT_NAME
    input_dims: tuple[int, ...] | None = None
    output_dims: tuple[int, ...] | None = None


def _dims(dims: tuple[int, ...]) -> str:
    return ", ".join(str(d) for d in dims)


def config_pbtxt(spec: TritonModelSpec) -> str:
    """The model configuration (protobuf text format) for ``spec``."""
    runtime = 'platform: "onnxruntime_onnx"' if spec.backend == "onnx" else 'backend: "python"'
    preferred = ", ".join(str(b) for b in spec.preferred_batch if b <= spec.max_batch)
    s = spec.input_size
    ins, outs = _dims(spec.input_dims or (3, s, s)), _dims(spec.output_dims or (s, s))
    return f"""name: "{spec.name}"
{runtime}
max_batch_size: {spec.max_batch}
input [ {{ name: "{spec.input_name}" data_type: TYPE_FP32 dims: [ {ins} ] }} ]
output [ {{ name: "{spec.output_name}" data_type: TYPE_FP32 dims: [ {outs} ] }} ]
dynamic_batching {{
  preferred_batch_size: [ {preferred} ]
  max_queue_delay_microseconds: {spec.max_queue_delay_us}
  default_queue_policy {{
    timeout_action: REJECT
    default_timeout_microseconds: {spec.queue_timeout_us}
    allow_timeout_override: true
  }}
}}
instance_group [ {{ kind: {spec.kind} count: {spec.instances} }} ]
parameters {{ key: "intra_op_threads" value: {{ string_value: "{spec.threads}" }} }}
"""


def write_repository(loaded: LoadedModel, out: Path, spec: TritonModelSpec) -> Path:
    """Write ``out/<name>/`` (config, ONNX with a free batch axis, model.py for python); returns it."""
    if spec.backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, not {spec.backend!r}")
    return write_model_dir(out, spec, lambda onnx: export_onnx(loaded, onnx, dynamic_batch=True))


def write_model_dir(out: Path, spec: TritonModelSpec, export: Callable[[Path], object]) -> Path:
    """``out/<name>/``: ``config.pbtxt``, ``1/model.onnx`` written by ``export`` and, for the python
    backend, ``1/model.py`` (removed for the onnxruntime backend); returns the folder."""
    model_dir = out / spec.name
    version = model_dir / "1"
    version.mkdir(parents=True, exist_ok=True)
    export(version / "model.onnx")
    if spec.backend == "python":
        shutil.copyfile(PYTHON_MODEL, version / "model.py")
    else:
        (version / "model.py").unlink(missing_ok=True)
    (model_dir / "config.pbtxt").write_text(config_pbtxt(spec))
    return model_dir
