"""Triton python-backend model: ``model.onnx`` next to this file, run by onnxruntime on CPU.

Copied as ``model.py`` into a repository by ``export-triton --backend python``; it runs inside
Triton's python-backend stub (numpy + onnxruntime in that Python), never in the pipeline.
Every request of a dynamic batch is stacked into one onnxruntime call, then split back.
Tensor names come from ``config.pbtxt`` (one input, one output), so the coarse model and the SAM
image encoder share this file.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    """The model instance Triton creates (one per ``instance_group`` count)."""

    def initialize(self, args: dict[str, Any]) -> None:
        """Open ``<repository>/<version>/model.onnx`` with the configured intra-op threads."""
        config = json.loads(args["model_config"])
        threads = int(config.get("parameters", {}).get("intra_op_threads", {}).get("string_value", 0))
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        self.session = ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])
        self.input_name, self.output_name = config["input"][0]["name"], config["output"][0]["name"]

    def execute(self, requests: list[Any]) -> list[Any]:
        """One onnxruntime run over the stacked inputs of all ``requests``; one response each."""
        inputs = [pb_utils.get_input_tensor_by_name(r, self.input_name).as_numpy() for r in requests]
        sizes = [len(x) for x in inputs]
        (out,) = self.session.run([self.output_name], {self.input_name: np.concatenate(inputs)})
        parts = np.split(np.asarray(out, np.float32), np.cumsum(sizes)[:-1])
        return [pb_utils.InferenceResponse([pb_utils.Tensor(self.output_name, p)]) for p in parts]
