"""The model shipped with Handoff, used until a deployment trains its own.

Trained by `python3 -m bench.linkage_bench --write-default-model` on the synthetic
population (`linkage.synthetic`): sensible weights for US names and dates, not tuned to any
state's data. Retrain on the index once it holds real records (`linkage.retrain`).
"""

from __future__ import annotations

from importlib import resources

from linkage.scoring import CompiledModel

DEFAULT_MODEL_FILE = "default_model.json"


def default_model() -> CompiledModel:
    text = resources.files("linkage").joinpath(DEFAULT_MODEL_FILE).read_text("utf-8")
    return CompiledModel.from_json(text)
