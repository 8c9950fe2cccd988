"""Inference backends behind one small interface: ONNX Runtime (everywhere) and TensorRT (Jetson/GPU).

A backend takes a float blob (N, 3, H, W) and returns the model's first output as a numpy array.
`input_hw`, `batch` (None when dynamic), `class_names` and `stride` describe the model; they come
from the Ultralytics metadata stored in the ONNX file, or from the sidecar JSON of a TensorRT engine.
"""

from __future__ import annotations

import ast
import json
import os

import numpy as np

from .errors import BackendUnavailable, EngineMismatchError

REBUILD_HINT = "rebuild it on this device with ./build_engines.sh (it reads models/*.onnx)"


def _parse_names(raw) -> list:
    if raw is None:
        return []
    if isinstance(raw, str):
        try:
            raw = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            return []
    if isinstance(raw, dict):
        return [str(raw[k]) for k in sorted(raw, key=int)]
    return [str(v) for v in raw]


class OnnxBackend:
    kind = "onnx"

    def __init__(self, path, providers=None, threads=None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise BackendUnavailable("onnxruntime is not installed: pip install onnxruntime "
                                     "(onnxruntime-gpu on a CUDA machine)") from None
        self.path = str(path)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        available = ort.get_available_providers()
        chosen = [p for p in (providers or ["CUDAExecutionProvider", "CPUExecutionProvider"]) if p in available]
        try:
            self.session = ort.InferenceSession(self.path, options, providers=chosen or available)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise BackendUnavailable(f"{self.path}: cannot load ONNX model: {exc}") from None
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.input_dtype = np.float16 if "float16" in inp.type else np.float32
        meta = self.session.get_modelmeta().custom_metadata_map
        self.class_names = _parse_names(meta.get("names"))
        self.stride = int(meta.get("stride", 32))
        shape = inp.shape
        self.batch = shape[0] if isinstance(shape[0], int) else None
        self.dynamic_hw = not (isinstance(shape[2], int) and isinstance(shape[3], int))
        if not self.dynamic_hw:
            self.input_hw = (shape[2], shape[3])
        else:  # dynamic spatial axes: use the size it was exported at
            size = ast.literal_eval(meta.get("imgsz", "[640, 640]"))
            self.input_hw = (int(size[0]), int(size[1]))
        self.end2end = meta.get("end2end", "False") == "True"

    def run(self, blob: np.ndarray) -> np.ndarray:
        return self.session.run(self.output_names[:1], {self.input_name: blob.astype(self.input_dtype, copy=False)})[0]


def engine_meta_path(engine_path) -> str:
    return str(engine_path) + ".json"


def check_engine_meta(meta: dict, current: dict, engine_path: str = "") -> None:
    """Refuse an engine built for another GPU or TensorRT version, naming both and the fix."""
    for key, what in (("tensorrt", "TensorRT version"), ("gpu", "GPU"), ("compute_capability", "compute capability")):
        built, here = meta.get(key), current.get(key)
        if built and here and str(built) != str(here):
            raise EngineMismatchError(
                f"{engine_path}: engine was built for {what} {built} but this device has {here}; TensorRT engines only run on the "
                f"GPU model and TensorRT version that built them: {REBUILD_HINT}")


def _cudart():
    try:
        from cuda import cudart  # cuda-python
        return cudart
    except ImportError:
        try:
            from cuda.bindings import runtime as cudart  # cuda-python >= 12.6 layout
            return cudart
        except ImportError:
            raise BackendUnavailable("TensorRT needs cuda-python for device memory: pip install cuda-python") from None


def _check(result):
    err = result[0] if isinstance(result, tuple) else result
    if int(err) != 0:
        raise BackendUnavailable(f"CUDA call failed with error {err}")
    return result[1] if isinstance(result, tuple) and len(result) == 2 else result


def device_fingerprint() -> dict:
    """GPU name, compute capability and TensorRT version of this machine ({} without TensorRT/CUDA)."""
    info = {}
    try:
        import tensorrt as trt
        info["tensorrt"] = trt.__version__
    except ImportError:
        return info
    try:
        cudart = _cudart()
        props = _check(cudart.cudaGetDeviceProperties(0))
        name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
        info["gpu"] = name.strip("\x00").strip()
        info["compute_capability"] = f"{props.major}.{props.minor}"
    except BackendUnavailable:
        pass
    return info


class TensorRTBackend:
    """A serialized TensorRT engine (TensorRT >= 8.5 tensor API) with cuda-python for buffers."""

    kind = "tensorrt"

    def __init__(self, path):
        try:
            import tensorrt as trt
        except ImportError:
            raise BackendUnavailable(
                f"{path}: TensorRT is not installed on this machine; run the ONNX model instead "
                "(models/*.onnx with onnxruntime), or install TensorRT (JetPack ships it)") from None
        self.path = str(path)
        if not os.path.isfile(self.path):
            raise BackendUnavailable(f"{self.path}: engine not found; {REBUILD_HINT}")
        meta = {}
        if os.path.isfile(engine_meta_path(self.path)):
            with open(engine_meta_path(self.path), encoding="utf-8") as fh:
                meta = json.load(fh)
        check_engine_meta(meta, device_fingerprint(), self.path)
        self._trt = trt
        self._cudart = _cudart()
        logger = trt.Logger(trt.Logger.WARNING)
        with open(self.path, "rb") as fh:
            self.engine = trt.Runtime(logger).deserialize_cuda_engine(fh.read())
        if self.engine is None:
            raise EngineMismatchError(f"{self.path}: TensorRT could not deserialize this engine (built for another GPU or "
                                      f"TensorRT version?): {REBUILD_HINT}")
        if not hasattr(self.engine, "num_io_tensors"):
            raise BackendUnavailable(f"TensorRT {trt.__version__} is too old: need 8.5 or newer")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.input_name = next(n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT)
        self.output_name = next(n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT)
        shape = tuple(self.engine.get_tensor_shape(self.input_name))
        self.input_dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(self.input_name)))
        self.output_dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(self.output_name)))
        self.batch = shape[0] if shape[0] > 0 else None
        self.input_hw = (int(shape[2]), int(shape[3])) if shape[2] > 0 else tuple(meta.get("imgsz", (640, 640)))
        self.dynamic_hw = False  # our engines' optimisation profile fixes the spatial size
        self.class_names = _parse_names(meta.get("names"))
        self.stride = int(meta.get("stride", 32))
        self.end2end = bool(meta.get("end2end", False))
        self.stream = _check(self._cudart.cudaStreamCreate())
        self._buffers = {}

    def _device_buffer(self, name, nbytes):
        ptr, size = self._buffers.get(name, (None, 0))
        if size < nbytes:
            if ptr is not None:
                self._cudart.cudaFree(ptr)
            ptr = _check(self._cudart.cudaMalloc(nbytes))
            self._buffers[name] = (ptr, nbytes)
        return ptr

    def run(self, blob: np.ndarray) -> np.ndarray:
        cudart = self._cudart
        blob = np.ascontiguousarray(blob.astype(self.input_dtype, copy=False))
        self.context.set_input_shape(self.input_name, blob.shape)
        out_shape = tuple(self.context.get_tensor_shape(self.output_name))
        out = np.empty(out_shape, dtype=self.output_dtype)
        d_in = self._device_buffer(self.input_name, blob.nbytes)
        d_out = self._device_buffer(self.output_name, out.nbytes)
        kind = cudart.cudaMemcpyKind
        _check(cudart.cudaMemcpyAsync(d_in, blob.ctypes.data, blob.nbytes, kind.cudaMemcpyHostToDevice, self.stream))
        self.context.set_tensor_address(self.input_name, int(d_in))
        self.context.set_tensor_address(self.output_name, int(d_out))
        if not self.context.execute_async_v3(self.stream):
            raise EngineMismatchError(f"{self.path}: TensorRT execution failed")
        _check(cudart.cudaMemcpyAsync(out.ctypes.data, d_out, out.nbytes, kind.cudaMemcpyDeviceToHost, self.stream))
        _check(cudart.cudaStreamSynchronize(self.stream))
        return out.astype(np.float32, copy=False)

    def __del__(self):
        for ptr, _ in getattr(self, "_buffers", {}).values():
            try:
                self._cudart.cudaFree(ptr)
            except Exception:  # interpreter shutdown: nothing left to free
                pass


def open_backend(path, **options):
    """A backend for a .onnx or .engine file."""
    path = str(path)
    if path.endswith(".engine"):
        return TensorRTBackend(path)
    if path.endswith(".onnx"):
        return OnnxBackend(path, providers=options.get("providers"), threads=options.get("threads"))
    raise BackendUnavailable(f"{path}: unknown model file type (expected .onnx or .engine)")
