"""Tools that find out why transformer training fails: probes, the dashboard, the doctor's
preflight checks, a recorder for hand-written (PyTorch) loops, a diagnosis from metrics, NaN provenance (``detect_anomaly``) and the array
memory a graph holds (``array_memory``)."""

from . import anomaly, checks, lab, metrics, probes
from .anomaly import AnomalyError, detect_anomaly
from .attention_maps import attention_maps, render_attention_maps
from .checks import CheckResult
from .dashboard import dashboard, render_dashboard
from .diagnose import Diagnosis, Finding, Thresholds, diagnose
from .doctor import DoctorReport, doctor, doctor_for_config
from .memory import ArrayMemory, array_memory
from .metrics import data_entropy, load_metrics
from .probes import Probes
from .recorder import RunRecorder
from .run_report import WriteDashboard

__all__ = [
    "AnomalyError",
    "ArrayMemory",
    "CheckResult",
    "Diagnosis",
    "DoctorReport",
    "Finding",
    "Probes",
    "RunRecorder",
    "Thresholds",
    "anomaly",
    "array_memory",
    "attention_maps",
    "checks",
    "dashboard",
    "data_entropy",
    "detect_anomaly",
    "diagnose",
    "doctor",
    "doctor_for_config",
    "lab",
    "load_metrics",
    "metrics",
    "probes",
    "render_attention_maps",
    "render_dashboard",
    "WriteDashboard",
]
