"""Load a pipeline script (pipelines/*.py, not a package) as a module Ray workers can unpickle."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from ray import cloudpickle

PIPELINES = Path(__file__).resolve().parents[1] / "pipelines"


def load_pipeline(script: str, module_name: str) -> ModuleType:
    """``pipelines/<script>`` imported as ``module_name``, pickled by value (workers cannot import it by path)."""
    spec = importlib.util.spec_from_file_location(module_name, PIPELINES / script)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    cloudpickle.register_pickle_by_value(module)
    return module
