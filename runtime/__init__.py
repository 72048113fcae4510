"""taskgroup deployment runtime: load an exported bundle and run its networks on frames.

Depends on numpy and onnxruntime only (TensorRT engines run through tensorrt and polygraphy,
both optional and imported only when used); it never imports torch or the taskgroup
toolkit, so robot software can ship it alone.

    from taskgroup_runtime import load_bundle
    bundle = load_bundle("deploy/", device="cpu")
    outputs = bundle.run(frame_uint8_hwc_rgb)   # {task: np.ndarray (N, C, H, W)}
"""

from taskgroup_runtime.backends import BACKENDS, backend_status, make_runner, resolve_backend
from taskgroup_runtime.bundle import EXECUTION_MODES, Bundle, load_bundle
from taskgroup_runtime.device import DeviceSpec, parse_device
from taskgroup_runtime.errors import BackendUnavailableError, BundleError, RuntimeInputError
from taskgroup_runtime.manifest import MANIFEST_KIND, MANIFEST_NAME, Manifest, read_manifest, verify_files
from taskgroup_runtime.ort import OrtRunner, SessionFromOnnx
from taskgroup_runtime.runner import Runner
from taskgroup_runtime.specs import FRAME_FORMS
from taskgroup_runtime.timing import TimingConfig, measure
from taskgroup_runtime.trt import EngineFromBytes, TrtRunner, tensorrt_status

__all__ = [
    "load_bundle", "Bundle", "read_manifest", "verify_files", "Manifest", "Runner", "OrtRunner", "SessionFromOnnx",
    "TrtRunner", "EngineFromBytes", "tensorrt_status", "backend_status", "resolve_backend", "make_runner", "parse_device", "DeviceSpec",
    "TimingConfig", "measure", "BundleError", "RuntimeInputError", "BackendUnavailableError", "BACKENDS",
    "EXECUTION_MODES", "FRAME_FORMS", "MANIFEST_KIND", "MANIFEST_NAME",
]
