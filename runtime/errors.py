"""Errors the runtime raises. They do not derive from taskgroup's errors: the runtime is
embedded in robot software that does not install the training toolkit."""


class BundleError(ValueError):
    """The bundle on disk is unusable: missing or altered file, bad manifest, unsafe path."""


class RuntimeInputError(ValueError):
    """A frame passed to `Bundle.run` has the wrong type, shape, dtype, range or NaNs."""


class BackendUnavailableError(RuntimeError):
    """The requested backend/device cannot be used here (library missing, provider absent)."""


class EngineBuildError(RuntimeError):
    """TensorRT could not build an engine from a model (parser or builder failure)."""
