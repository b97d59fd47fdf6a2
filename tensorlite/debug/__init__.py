"""Tools that find out why transformer training fails, on tensorlite and PyTorch models: the model
view (what the blocks, attention, norms and head of any model are), attention capture, the
doctor's preflight checks, probes (and ``RunRecorder`` for a hand-written loop), the dashboard,
attention maps, a diagnosis from metrics, NaN provenance (``detect_anomaly``) and the array memory
a graph holds (``array_memory``)."""

from . import anomaly, capture, checks, lab, metrics, probes, view
from .anomaly import AnomalyError, detect_anomaly
from .attention_maps import attention_maps, render_attention_maps
from .capture import AttentionCall, Capture, ModuleCall
from .checks import REGISTRY, CheckResult
from .dashboard import dashboard, render_dashboard
from .diagnose import Diagnosis, Finding, Thresholds, diagnose
from .doctor import DoctorReport, doctor, doctor_for_config
from .memory import ArrayMemory, array_memory
from .metrics import data_entropy, load_metrics
from .probes import Probes
from .recorder import RunRecorder
from .run_report import WriteDashboard
from .view import ModelView, capture_attention, eval_mode, model_view

__all__ = [
    "REGISTRY",
    "AnomalyError",
    "ArrayMemory",
    "AttentionCall",
    "Capture",
    "CheckResult",
    "Diagnosis",
    "DoctorReport",
    "Finding",
    "ModelView",
    "ModuleCall",
    "Probes",
    "RunRecorder",
    "Thresholds",
    "anomaly",
    "array_memory",
    "attention_maps",
    "capture",
    "capture_attention",
    "checks",
    "dashboard",
    "data_entropy",
    "detect_anomaly",
    "diagnose",
    "doctor",
    "doctor_for_config",
    "eval_mode",
    "lab",
    "load_metrics",
    "metrics",
    "model_view",
    "probes",
    "render_attention_maps",
    "render_dashboard",
    "WriteDashboard",
    "view",
]
