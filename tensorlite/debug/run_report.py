"""The dashboard as a training callback: written when a run ends, however it ends."""

from __future__ import annotations

import warnings

from .dashboard import dashboard

__all__ = ["WriteDashboard"]


class WriteDashboard:
    """Writes ``run_dir/dashboard.html`` in ``on_train_end`` (after a finished, interrupted or
    NaN-stopped run alike). A failure to write it warns and never fails the run."""

    def __init__(self, filename: str = "dashboard.html") -> None:
        self.filename = filename
        self.path = None

    def on_train_end(self, trainer) -> None:
        out = trainer.run_dir / self.filename
        try:
            self.path = dashboard(trainer.run_dir, out=out)
        except Exception as e:  # the run's own result matters more than its report
            warnings.warn(f"could not write {out}: {e}", stacklevel=2)
