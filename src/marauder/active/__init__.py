"""Active learning: pick the pool images worth labelling, package them, import the vendor's labels.

    run_active_learning(cfg, workspace)                  -> ActiveLearningResult (the package zip)
    import_annotations(cfg, workspace, annotations, ...) -> ImportResult (labels, report, QA diff)
"""

from .importer import ImportResult, import_annotations
from .select_stage import ActiveLearningResult, run_active_learning

__all__ = ["ActiveLearningResult", "ImportResult", "import_annotations", "run_active_learning"]
