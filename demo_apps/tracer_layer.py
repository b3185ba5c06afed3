"""The demo's one shared layer: Fluoro's tracer, as teams deploy ADOT or Powertools as a layer.

Built as ``pip install -t python/`` would lay it out (the package under ``python/``), published
once into the local cloud's account before the stacks deploy, and listed by every demo
function through its template's ``Globals`` (``arn:...:layer:fluoro-tracer:1``), so each
function imports the tracer from ``/opt/python`` rather than from the host's environment.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Final

import tracer
from demo_apps.cloud.lambdas.layers import LayerStore

TRACER_LAYER: Final = "fluoro-tracer"


def publish_tracer_layer(store: LayerStore) -> str:
    """The tracer package published as a layer version of `store`; its version ARN."""
    with tempfile.TemporaryDirectory(prefix="fluoro-tracer-layer-") as folder:
        package = Path(tracer.__file__).parent
        shutil.copytree(package, Path(folder) / "python" / "tracer", ignore=shutil.ignore_patterns("__pycache__"))
        return store.publish(TRACER_LAYER, Path(folder))
