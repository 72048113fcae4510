"""Device profiling: measured latency and MACs per candidate architecture.

`taskgroup profile` writes a profile (profiles/*.json); selection reads it with
`load_profile`, which does not import torch. Measuring lives in
`taskgroup.profile.profiler` (imports torch, fvcore, onnxruntime lazily).
"""

from taskgroup.profile.costmodel import DeviceProfile, load_profile, profile_from_doc, profile_name
from taskgroup.profile.measurements import LatencyStats

__all__ = ["DeviceProfile", "LatencyStats", "load_profile", "profile_from_doc", "profile_name"]
