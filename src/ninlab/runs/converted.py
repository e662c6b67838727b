"""The file `ninlab convert` writes: safetensors whose metadata says what was done to the model
and holds the run's config (or, for a model named without a run, its spec), sealed with a
checksum (ninlab.checksum).

save_converted      write it
load_converted      the model back from that file
load_converted_run  that file as its run's classifier, with the run's config (what
                    `ninlab.runs.load_run` gives for it, so that predict and eval take it)

Opening such a file runs no code of its own: a registry model is built from its name, and a
model named `module:callable` or `file.py:callable` only with the reader's explicit opt-in.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from ninlab.checksum import check_weights, read_safetensors, save_sealed
from ninlab.convert import Conversion, ConvertedClassifier, DenseClassifier, for_inference
from ninlab.errors import NinlabError
from ninlab.models import create_model_for, imported_by, load_model
from ninlab.train import TrainConfig

FORMAT = "ninlab.convert.for_inference"  # the metadata's "format" (kept: files in use carry it)


def save_converted(
    model: DenseClassifier,
    path: str | Path,
    conversion: Conversion,
    config: TrainConfig | None,
    source: dict | None = None,
) -> None:
    """Safetensors weights; the metadata says what was done and holds the run's config, or, for
    a model named without a run, `source` ({"model": spec, "kwargs": {...}})."""
    meta = {"format": FORMAT, "conversion": json.dumps(asdict(conversion))}
    if config is not None:
        meta |= {"model": config.model, "config": json.dumps(config.to_dict())}
    else:
        meta |= {"model": source["model"], "source": json.dumps(source)}
    save_sealed(path, model.state_dict(), meta)  # checked by load_converted


def load_converted(
    path: str | Path, trust_code: bool = False
) -> tuple[DenseClassifier, TrainConfig | None]:
    """Rebuild a model written by `save_converted` (or `ninlab convert`): (model, config); the
    config is None for a model converted without a run (it is rebuilt from its spec).

    Opening the file runs no code of its own: a registry model is built from its name, and a
    file whose model is `package.module:callable` or `file.py:callable` is refused in one
    sentence unless `trust_code` is True (as with `trust_remote_code`: say yes only to a file
    whose author you trust, since importing the module runs it)."""
    return _built_from(path, *_read_converted(path), trust_code)


def _read_converted(path) -> tuple[dict, dict]:
    """(metadata, tensors) of a file written by `save_converted`, checksum checked."""
    meta, state = read_safetensors(path)
    if meta.get("format") != FORMAT:
        raise NinlabError(
            f"{path} was not written by `ninlab convert`; pass a run directory, or convert the "
            "run first."
        )
    check_weights(path, meta, state, _again(meta))  # before anything is built from the metadata
    return meta, state


def _again(meta: dict) -> str:
    return "convert the run again" if "config" in meta else "convert the model again"


def _built_from(path, meta: dict, state: dict, trust_code: bool):
    """The converted model that `meta` describes, with the weights `state`: (model, config)."""
    try:  # ValueError: not JSON; KeyError, TypeError: fields missing or of the wrong type
        size = tuple(json.loads(meta["conversion"])["input_size"])
        if "config" in meta:
            config = TrainConfig.from_dict(json.loads(meta["config"]))
            model = create_model_for(state, path, config.model, num_classes=len(config.classes),
                                     in_chans=size[0])  # fmt: skip
        else:
            config, (spec, kwargs) = None, _source(meta)
            if imported_by(spec) is None:
                model = create_model_for(state, path, spec, **kwargs)
            else:
                _check_trusted(path, spec, trust_code)
                model = load_model(spec, kwargs)
        dense, _ = for_inference(model, size)
        dense.load_state_dict(state)
    except (ValueError, KeyError, TypeError, RuntimeError) as e:
        why = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
        raise NinlabError(f"{path} is damaged ({why}); {_again(meta)}.") from None
    return dense.eval(), config


def _source(meta: dict) -> tuple[str, dict]:
    """The (spec, kwargs) of a model converted without a run."""
    source = json.loads(meta["source"])
    spec, kwargs = source["model"], source["kwargs"]
    if not isinstance(spec, str) or not isinstance(kwargs, dict):
        raise TypeError("its source is not a model name and a dict of arguments")
    return spec, kwargs


def _check_trusted(path, spec: str, trust_code: bool) -> None:
    """One sentence, naming what would be imported, unless the user trusts the file's code."""
    if trust_code:
        return
    raise NinlabError(
        f"{path} was converted from {spec!r}: building it would import and run "
        f"{imported_by(spec)!r}, and opening a file runs no code without your say-so; if you "
        "trust the file's author, call ninlab.runs.load_converted(path, trust_code=True)."
    )


def load_converted_run(path: str | Path) -> tuple[ConvertedClassifier, TrainConfig]:
    """A file written by `ninlab convert RUN_DIR` as the classifier of that run (logits from the
    converted model, `ConvertedClassifier`) and the run's config: what `ninlab.runs.load_run`
    returns for such a file, so that `predict` and `eval` take it in place of the run. A file
    converted from a model named without a run is refused before its model is built."""
    meta, state = _read_converted(path)
    if "config" not in meta:
        try:
            spec = _source(meta)[0]
        except (ValueError, KeyError, TypeError):
            spec = None
        code = imported_by(spec) if spec else None
        raise NinlabError(
            f"{path} was converted from {repr(spec) if spec else 'a model'} named without a "
            "run, so it has no classes or normalisation"
            + (f" (and building it would import and run {code!r}, which opening a file never "
               "does)" if code else "")
            + "; convert a run (`ninlab convert RUN_DIR --out FILE`) to use it here."
        )  # fmt: skip
    dense, config = _built_from(path, meta, state, trust_code=False)
    return ConvertedClassifier(dense, config.model).eval(), config
