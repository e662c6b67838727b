"""The run directory's files, each written and read here alone (the formats and their checks).

RUN_DIR/config.json        the resolved TrainConfig (model, dataset, input size, mean/std, ...)
RUN_DIR/metrics.csv|jsonl  one row per epoch, the fields of METRICS
RUN_DIR/curves.png         losses and accuracy by epoch
RUN_DIR/final.safetensors  weights after the last epoch   } metadata: model name, config
RUN_DIR/best.safetensors   weights of the best test epoch }
RUN_DIR/checkpoint.pt      model, optimizer, scheduler and RNG states, for --resume
RUN_DIR/confusion.png      the confusion matrix, written by `ninlab eval`
RUN_DIR/files.json         a folder of images only: which files went to train and test, and
                           which were skipped (paths relative to the folder)
RUN_DIR/facts.json         one entry per training session (the first and each --resume): when,
                           the command, versions, device, precision, threads, processes, epochs
RUN_DIR/train.lock         while a process trains it (see ninlab.lock)

The checkpoint and the weights carry a SHA-256 of their content (ninlab.checksum), checked on
every read. Files written by `ninlab convert` have their own format, in `ninlab.runs.converted`.
"""

from __future__ import annotations

import csv
import json
import pickle
import shlex
import struct
from pathlib import Path

import torch
from PIL import Image
from torch import nn

from ninlab.checksum import check_checkpoint, check_weights, read_safetensors, save_sealed
from ninlab.errors import NinlabError
from ninlab.files import atomic_write, leftovers, make_dir, write_text
from ninlab.terminal import first_of
from ninlab.train import TrainConfig

CONFIG = "config.json"
METRICS_CSV, METRICS_JSONL = "metrics.csv", "metrics.jsonl"
CURVES, CONFUSION = "curves.png", "confusion.png"
CHECKPOINT = "checkpoint.pt"
FILES = "files.json"
FACTS = "facts.json"
WEIGHTS = {"best": "best.safetensors", "final": "final.safetensors"}
WRITTEN = (CONFIG, METRICS_CSV, METRICS_JSONL, CURVES, CHECKPOINT, FILES, FACTS,
           *WEIGHTS.values())  # fmt: skip
BEST = "the epoch of highest test accuracy (the earlier one on a tie)"  # what best.safetensors is
FACT_COUNTS = ("threads", "processes", "first_epoch", "last_epoch")  # facts.json's numbers
METRICS = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "train_time",
           "eval_time", "elapsed", "images_per_s")  # fmt: skip


# ---- reading and writing the files ----


def read_config(run_dir: str | Path) -> TrainConfig:
    """The run's config.json as a TrainConfig, or one NinlabError saying what is wrong."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise NinlabError(f"run directory {run_dir} does not exist; pass the --out of a train run.")
    path = run_dir / CONFIG
    if not path.is_file():
        raise NinlabError(f"{run_dir} has no {CONFIG}; it is not a ninlab run directory.")
    try:  # ValueError: not JSON, not UTF-8, or an integer of over 4,300 digits
        d = json.loads(path.read_bytes())
    except (ValueError, RecursionError, OSError) as e:
        raise NinlabError(
            f"{path} is not valid JSON ({str(e)[:100]}); the run directory is damaged."
        ) from None
    if not isinstance(d, dict):
        raise NinlabError(f"{path} holds no JSON object; the run directory is damaged.")
    try:
        return TrainConfig.from_dict(d)
    except NinlabError as e:
        raise NinlabError(f"{path} is damaged: {e}") from None


def write_config(run_dir: Path, config: TrainConfig) -> None:
    """Write config.json (the resolved config, as `read_config` reads it back)."""
    make_dir(run_dir)
    write_text(run_dir / CONFIG, json.dumps(config.to_dict(), indent=2))


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The per-epoch rows of metrics.jsonl (none when the run has not finished an epoch)."""
    path = Path(run_dir) / METRICS_JSONL
    if not path.is_file():
        return []
    try:
        lines = path.read_bytes().decode("utf-8").splitlines()
    except (UnicodeDecodeError, OSError) as e:
        raise NinlabError(f"{path} cannot be read as text ({e}); the run is damaged.") from None
    rows = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:  # ValueError: not JSON, or an integer of over 4,300 digits
            row = json.loads(line)
        except (ValueError, RecursionError):
            raise NinlabError(f"{path} line {i + 1} is not JSON; the run is damaged.") from None
        # a row may lack fields (an older ninlab, a hand-made run); the ones it has are numbers
        if not isinstance(row, dict) or any(
            k in row and type(row[k]) not in (int, float) for k in METRICS
        ):
            raise NinlabError(
                f"{path} line {i + 1} is not an object whose {', '.join(METRICS)} are numbers; "
                "the run is damaged."
            )
        impossible = next((k for k in row if not _possible(k, row[k])), None)
        if impossible:
            bound = "is negative" if "loss" in impossible else "lies outside 0 to 1"
            raise NinlabError(
                f"{path} line {i + 1} has a {impossible} of {row[impossible]!r}, which {bound}; "
                "the run is damaged."
            )
        rows.append(row)
    return rows


def _possible(field: str, value) -> bool:
    """Whether a metrics value can be what it says: a cross-entropy is at least 0, an accuracy
    a share (NaN passes: a run that diverged wrote it)."""
    if field in ("train_loss", "test_loss"):
        return not value < 0
    if field in ("train_acc", "test_acc"):
        return not (value < 0 or value > 1)
    return True


def write_metrics(run_dir: Path, history: list[dict]) -> None:
    """Rewrite metrics.csv and metrics.jsonl from the per-epoch rows, each atomically."""

    def write_csv(tmp):
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=METRICS, extrasaction="ignore")
            w.writeheader()
            w.writerows(history)

    atomic_write(run_dir / METRICS_CSV, write_csv)
    write_text(run_dir / METRICS_JSONL, "".join(json.dumps({k: r[k] for k in METRICS}) + "\n"
                                                for r in history))  # fmt: skip


def read_facts(run_dir: str | Path) -> list[dict]:
    """The training sessions facts.json records, earliest first (none for a run trained before
    ninlab recorded them)."""
    path = Path(run_dir) / FACTS
    if not path.is_file():
        return []
    try:
        d = json.loads(path.read_bytes())
    except (ValueError, RecursionError, OSError) as e:
        raise NinlabError(
            f"{path} is not valid JSON ({str(e)[:100]}); the run is damaged."
        ) from None
    sessions = d.get("sessions") if isinstance(d, dict) else None

    def plain(k, v) -> bool:  # counts are whole numbers, the rest text (or null)
        return type(v) is int if k in FACT_COUNTS else type(v) in (str, type(None))

    if not isinstance(sessions, list) or not all(
        isinstance(x, dict) and all(plain(k, v) for k, v in x.items()) for x in sessions
    ):
        raise NinlabError(f"{path} holds no list of sessions of text and counts; it is damaged.")
    return sessions


def write_facts(run_dir: Path, sessions: list[dict]) -> None:
    write_text(run_dir / FACTS, json.dumps({"sessions": sessions}, indent=1))


def save_weights(model: nn.Module, path: Path, config: TrainConfig) -> None:
    """Weights as safetensors with the model name and the config in the metadata."""
    meta = {"model": config.model, "config": json.dumps(config.to_dict())}
    save_sealed(path, model.state_dict(), meta)  # checked by read_weights


def read_weights(path: Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """The metadata and tensors of a weights file, checked against the checksum that
    `save_weights` wrote into it (one sentence naming the file when they differ)."""
    meta, state = read_safetensors(path)
    remedy = "train the run again"
    if path.name in WEIGHTS.values():  # a run's best or final: the other may serve
        which, other = next((k, n) for k, n in WEIGHTS.items() if n != path.name)
        if (path.parent / other).is_file():
            remedy = f"use the run's {other} (--weights {which}) or {remedy}"
    check_weights(path, meta, state, remedy)
    return meta, state


def load_weights(model: nn.Module, path: Path, model_name: str) -> None:
    """Load safetensors weights (`read_weights`), naming the tensors that do not fit the
    model."""
    load_state(model, *read_weights(path), path, model_name)


def load_state(model: nn.Module, meta: dict, state: dict, path: Path, model_name: str) -> None:
    saved_name = meta.get("model")
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    # integers for a float parameter (or floats for a counter) would be cast without a word
    kind = sorted(k for k in set(own) & set(state) if k not in wrong
                  and own[k].is_floating_point() != state[k].is_floating_point())  # fmt: skip
    if missing or unexpected or wrong or kind:
        parts = []
        if wrong:
            shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in wrong[:5]]
            parts.append("shapes differ for " + ", ".join(shapes))
        if kind:
            kinds = [f"{k} {state[k].dtype} vs {own[k].dtype}" for k in kind[:5]]
            parts.append("dtypes differ for " + ", ".join(kinds))
        if missing:
            parts.append(f"missing {first_of(missing, 5)}")
        if unexpected:
            parts.append(f"unexpected {first_of(unexpected, 5)}")
        saved = f" (saved from {saved_name})" if saved_name else ""
        raise NinlabError(f"{path}{saved} does not fit model {model_name}: {'; '.join(parts)}.")
    model.load_state_dict(state)


def read_checkpoint(run_dir: Path) -> dict:
    """The run's checkpoint.pt (tensors and plain data only), or one NinlabError if damaged."""
    path = run_dir / CHECKPOINT
    if not path.is_file():
        raise NinlabError(f"{run_dir} has no {CHECKPOINT} to resume from.")
    # weights_only: tensors and plain data only, so a planted pickle cannot run code. Its
    # unpickler runs the pickle's opcodes in Python, so damaged bytes raise whatever a bad opcode
    # causes: a missing memo entry (KeyError), an empty stack (IndexError), a short read
    # (struct.error, EOFError), an unhashable key (TypeError); the zip reader raises RuntimeError.
    damaged = (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, LookupError,
               TypeError, AttributeError, struct.error)  # fmt: skip
    try:
        ckpt = torch.load(path, weights_only=True, map_location="cpu")
    except damaged as e:
        # torch's message spans lines around the one that says what went wrong
        boiler = ("Weights only load failed", "Please file an issue", "Check the documentation")
        lines = [t for t in str(e).splitlines() if t.strip() and not t.startswith(boiler)]
        why = (lines[0].split(". ")[0] if lines else type(e).__name__)[:160]
        raise NinlabError(
            f"{path} is damaged or not a ninlab checkpoint ({why}); delete it to train the run "
            "again from its start."
        ) from None
    if isinstance(ckpt, dict):  # the checksum of RunWriter.on_interrupt
        again = f"delete it, and `ninlab train --resume {q(run_dir)}` trains the run anew"
        ckpt = check_checkpoint(path, ckpt, again)
    # what resume_run and TrainState.load use, with their types
    need = {"config": dict, "model": dict, "optimizer": dict, "scheduler": dict, "epoch": int,
            "step": int, "history": list, "partial": dict, "rng_cpu": torch.Tensor}  # fmt: skip
    bad = [k for k, t in need.items()
           if not isinstance(ckpt, dict) or not isinstance(ckpt.get(k), t)
           or t is int and (isinstance(ckpt[k], bool) or ckpt[k] < 0)
           or k == "rng_cpu" and ckpt[k].dtype != torch.uint8]  # fmt: skip
    if bad:
        raise NinlabError(
            f"{path} is not a ninlab checkpoint, or is damaged: {', '.join(bad)} missing or of "
            "the wrong type; delete it to train the run again from its start."
        )
    return ckpt


def check_run(run_dir: str | Path) -> dict[str, str]:
    """Each file of a run directory that exists -> "ok" when it loads completely, else why not;
    and each temporary file a killed writer left -> "leftover". (What bench/faults.py checks
    after every kill.)"""
    run_dir = Path(run_dir)
    readers = {
        CONFIG: lambda p: read_config(run_dir),
        METRICS_JSONL: lambda p: read_metrics(run_dir),
        METRICS_CSV: lambda p: list(csv.DictReader(p.read_text().splitlines())),
        CHECKPOINT: lambda p: read_checkpoint(run_dir),
        FILES: lambda p: json.loads(p.read_text()),
        FACTS: lambda p: read_facts(run_dir),
        CURVES: _read_png,
        **{w: read_weights for w in WEIGHTS.values()},
    }
    found = {}
    for name, read in readers.items():
        if (run_dir / name).is_file():
            try:
                read(run_dir / name)
                found[name] = "ok"
            except Exception as e:  # any failure to load is what this reports
                found[name] = f"{type(e).__name__}: {e}"
    for tmp in leftovers(run_dir, WRITTEN):
        found[tmp.name] = "leftover"
    return found


def _read_png(path: Path) -> None:
    with Image.open(path) as img:
        img.load()


def write_files_json(out: Path, folder: str, files: dict, skipped: list) -> None:
    """Which files of a folder went to train and test, and which were skipped."""
    write_text(out / FILES, json.dumps({"folder": folder, **files, "skipped": skipped}, indent=1))


def write_checkpoint(run_dir: Path, ckpt: dict) -> None:
    """checkpoint.pt, atomically; `ckpt` is sealed (ninlab.checksum) by the caller."""

    def save(tmp):  # into a Python file, so that a full disk surfaces as an OSError
        with open(tmp, "wb") as f:  # (to a path, torch says only "unexpected pos")
            torch.save(ckpt, f)

    atomic_write(run_dir / CHECKPOINT, save)


def q(path: str | Path) -> str:
    """`path` quoted for a shell, so that a hint pastes right when it holds spaces."""
    return shlex.quote(str(path))
