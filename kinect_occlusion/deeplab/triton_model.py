"""Triton python-backend model: ``model.onnx`` next to this file, run by onnxruntime on CPU.

Copied as ``model.py`` into a repository by ``export-triton --backend python``; it runs inside
Triton's python-backend stub (numpy + onnxruntime in that Python), never in the pipeline.
Every request of a dynamic batch is stacked into one onnxruntime call, then split back.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils

INPUT_NAME, OUTPUT_NAME = "image", "occlusion_prob"


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

    def execute(self, requests: list[Any]) -> list[Any]:
        """One onnxruntime run over the stacked inputs of all ``requests``; one response each."""
        inputs = [pb_utils.get_input_tensor_by_name(r, INPUT_NAME).as_numpy() for r in requests]
        sizes = [len(x) for x in inputs]
        (prob,) = self.session.run([OUTPUT_NAME], {INPUT_NAME: np.concatenate(inputs)})
        parts = np.split(np.asarray(prob, np.float32), np.cumsum(sizes)[:-1])
        return [pb_utils.InferenceResponse([pb_utils.Tensor(OUTPUT_NAME, p)]) for p in parts]
