"""A person's own code named as `module:function` (the CLI's `--model`, `--data`; worker processes).

`load("mypkg.models:build", "--model")` imports the module and returns the function;
`spec_of(build, "build_model")` is the inverse, for handing a function to a worker process,
which can only import it again by name. Both raise ValueError naming the argument and what is
wrong (a missing colon, a module that does not import, a name it lacks, a lambda or a function
defined in `__main__`, which no other process can import).
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from typing import Any


def load(spec: str, argument: str) -> Callable[..., Any]:
    """The callable `spec` ("package.module:function", or "path/to/file.py:function") names."""
    if not isinstance(spec, str) or spec.count(":") != 1 or not all(spec.split(":")):
        raise ValueError(
            f"Argument `{argument}` must name a function as 'module:function' (for example 'mypkg.models:build'), "
            f"got {spec!r}."
        )
    module_name, attribute = spec.split(":")
    try:
        if module_name.endswith(".py"):
            module = _import_file(module_name)
        else:
            if "" not in sys.path and os.getcwd() not in sys.path:
                sys.path.insert(0, os.getcwd())  # as `python -m` would: the current folder's modules import
            module = importlib.import_module(module_name)
    except Exception as error:  # ImportError, or whatever the module raised while importing
        raise ValueError(
            f"Argument `{argument}`={spec!r}: cannot import {module_name!r}: {type(error).__name__}: {error}"
        ) from error
    target: Any = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise ValueError(f"Argument `{argument}`={spec!r}: {module_name!r} has no attribute {attribute!r}.")
        target = getattr(target, part)
    if not callable(target):
        raise ValueError(f"Argument `{argument}`={spec!r}: {attribute!r} is not callable ({type(target).__name__}).")
    return target


def _import_file(path: str) -> Any:
    import importlib.util

    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such file {path!r}")
    name = "_keras_adaptive_user_" + os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def spec_of(function: Any, argument: str) -> str:
    """'module:qualname' for a function another process can import (checked by importing it)."""
    if isinstance(function, str):
        load(function, argument)
        return function
    module = getattr(function, "__module__", None)
    qualname = getattr(function, "__qualname__", None)
    if not callable(function) or module is None or qualname is None:
        raise ValueError(f"Argument `{argument}` must be a function or a 'module:function' string, got {function!r}.")
    if module == "__main__" or "<" in qualname:
        where = (
            "defined in __main__ (a script or a notebook)"
            if module == "__main__"
            else "a lambda"
            if qualname.endswith("<lambda>")
            else "defined inside a function"
        )
        raise ValueError(
            f"Argument `{argument}`={qualname!r} is {where}, so worker processes on other backends cannot import "
            "it: define it at the top level of a module (for example mypkg/models.py) and pass it, or its name "
            "'mypkg.models:build'."
        )
    spec = f"{module}:{qualname}"
    if load(spec, argument) is not function:
        raise ValueError(f"Argument `{argument}`: {spec!r} does not name the function given.")
    return spec
