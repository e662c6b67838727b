"""A model named on the command line: a registry name, `package.module:callable` or
`path/to/file.py:callable`. Importing a module or a file runs its code, as `python -m` would.

The callable is called with the keyword arguments given (`--kwargs '{"num_classes": 10}'`), or
used as it is when it already is an nn.Module. The model's name in tables is the spec.

A spec typed by the user is their consent to run its code; a spec read from a file is not
(`imported_by`: readers refuse one that is not a registry name unless the user opts in).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path

from torch import nn

from ninlab.errors import NinlabError
from ninlab.models._registry import create_model, list_models

FORMS = "a name from `ninlab models`, package.module:callable or path/to/file.py:callable"


def imported_by(spec: str) -> str | None:
    """What building `spec` would import and run: None for a registry name, else the module
    ("my_pkg.nets") or the file ("path/net.py")."""
    if spec in list_models():
        return None
    where, sep, _ = spec.rpartition(":")
    return where if sep and where else spec


def load_model(spec: str, kwargs: dict | None = None, num_classes: int | None = None) -> nn.Module:
    """The model `spec` names, built with `kwargs` (registry models also take `num_classes`)."""
    kwargs = dict(kwargs or {})
    if spec in list_models():
        kwargs.setdefault("num_classes", num_classes or 10)
        model = create_model(spec, **kwargs)
        model.model_kwargs = kwargs
        return model
    where, sep, attr = spec.rpartition(":")
    if not sep or not where or not attr:
        raise NinlabError(f"unknown model {spec!r}; name {FORMS}.")
    module = _import_file(where) if where.endswith(".py") else _import_module(where)
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            found = sorted(n for n in vars(module) if callable(getattr(module, n)) and n[0] != "_")
            raise NinlabError(
                f"{where} has no {attr!r}; it defines {', '.join(found[:12]) or 'no callables'}."
            )
        obj = getattr(obj, part)
    if isinstance(obj, nn.Module) and not kwargs:
        model = obj
    elif callable(obj):
        try:
            model = obj(**kwargs)
        except SystemExit as e:  # the user's code ends the process: say so rather than obey
            raise NinlabError(f"{spec}({_shown(kwargs)}) called sys.exit({e.code!r}).") from None
        except Exception as e:  # the user's code: any exception is theirs to see in one line
            raise NinlabError(f"{spec}({_shown(kwargs)}) raised {type(e).__name__}: {e}") from None
    else:
        raise NinlabError(f"{spec} is {_a(type(obj).__name__)}, not a callable returning a model.")
    if not isinstance(model, nn.Module):
        raise NinlabError(f"{spec}({_shown(kwargs)}) returned {_a(type(model).__name__)}, not "
                          "an nn.Module.")  # fmt: skip
    model.model_name, model.model_kwargs = spec, kwargs  # how to build it again
    return model


def _a(noun: str) -> str:
    """ "an int", "a float": the article by the noun's first letter."""
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


def _shown(kwargs: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items())


def _import_file(path: str):
    file = Path(path)
    if not file.is_file():
        raise NinlabError(f"{path} is not a file; name {FORMS}.")
    name = f"_ninlab_user_{file.stem}"
    loader = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(loader)
    sys.modules[name] = module  # as an import does: dataclasses and pickle look it up there
    sys.path.insert(0, str(file.resolve().parent))  # its own imports of files beside it
    try:
        loader.loader.exec_module(module)
    except SystemExit as e:
        del sys.modules[name]
        raise NinlabError(f"importing {path} called sys.exit({e.code!r}).") from None
    except Exception as e:
        del sys.modules[name]
        raise NinlabError(f"importing {path} raised {type(e).__name__}: {e}") from None
    finally:
        sys.path.remove(str(file.resolve().parent))
    return module


def _import_module(name: str):
    if os.getcwd() not in sys.path:  # as `python -m`: packages in the current folder are found
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name and name.startswith(e.name):
            raise NinlabError(f"no module named {e.name!r}; name {FORMS}.") from None
        raise NinlabError(f"importing {name} raised ModuleNotFoundError: {e}") from None
    except SystemExit as e:
        raise NinlabError(f"importing {name} called sys.exit({e.code!r}).") from None
    except Exception as e:
        raise NinlabError(f"importing {name} raised {type(e).__name__}: {e}") from None
