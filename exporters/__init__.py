"""PyTorch -> ONNX (-> TensorRT) export of a grouping into a verified deployment bundle."""

from taskgroup_exporters.bundle import DEFAULT_ATOL, FORMATS, PRECISIONS, export_bundle
from taskgroup_exporters.frames import synthetic_frames, validation_frames
from taskgroup.grouping import Grouping
from taskgroup_exporters.onnx_export import OnnxExportConfig

read_grouping = Grouping.load  # the grouping file's one reader (taskgroup.grouping)

__all__ = ["export_bundle", "read_grouping", "Grouping", "OnnxExportConfig", "synthetic_frames",
           "validation_frames", "FORMATS", "PRECISIONS", "DEFAULT_ATOL"]
