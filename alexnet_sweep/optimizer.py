"""The job's Keras optimizer, built from the `optimizer` config group by `hydra.utils.instantiate`.

An optimizer is one YAML file: `_target_` names the class, `lr` is passed as `learning_rate`, `name` labels it,
and every other key is passed to the class as it is.
"""

from __future__ import annotations

import inspect
import pydoc
import re
from collections.abc import Callable
from typing import Any

import keras
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from alexnet_sweep.errors import UserInputError, first_line

OUR_KEYS = ("name", "lr")  # the keys not passed to the optimizer's class (`lr` goes in as learning_rate)


def build_optimizer(optimizer: DictConfig) -> keras.optimizers.Optimizer:
    """Instantiates the optimizer's `_target_` with `learning_rate=lr` and its other keys as arguments.

    Args:
        optimizer: The `optimizer` config group (`_target_`, `name`, `lr`, and the class's own arguments).

    Returns:
        A new Keras optimizer.

    Raises:
        UserInputError: If `_target_` cannot be imported or is not a Keras optimizer, an argument's type does not
            match its default's (`optimizer.beta_1=abc`), or Keras rejects an argument (`optimizer.momentum=2`, an
            unknown key added with `+`); one line naming the key(s) and value(s).
    """
    target = optimizer._target_
    factory = _locate(target)
    arguments = {
        key: value for key, value in OmegaConf.to_container(optimizer, resolve=True).items() if key not in OUR_KEYS
    }
    del arguments["_target_"]
    _check_types(target, factory, arguments)
    try:
        built = instantiate({"_target_": target, **arguments}, learning_rate=optimizer.lr, _convert_="all")
    except InstantiationException as err:
        cause = err.__cause__ or err
        blamed = _blamed(first_line(cause), {**arguments, "lr": optimizer.lr})
        settings = " ".join(f"optimizer.{key}={value!r}" for key, value in blamed.items())
        verb = "rejects it" if len(blamed) == 1 else "rejects them"
        raise UserInputError(f"{settings}: {_short(target)} {verb}: {first_line(cause)}") from None
    if not isinstance(built, keras.optimizers.Optimizer):
        raise UserInputError(
            f"optimizer._target_={target!r}: built a {type(built).__name__}, not a keras.optimizers.Optimizer"
        )
    return built


def _locate(target: str) -> Callable[..., Any]:
    """Imports the object `target` names, and refuses anything that cannot build an optimizer."""
    try:
        found = pydoc.locate(target)
    except pydoc.ErrorDuringImport as err:
        raise UserInputError(f"optimizer._target_={target!r}: importing it failed: {first_line(err.value)}") from None
    if found is None:
        raise UserInputError(
            f"optimizer._target_={target!r}: cannot be imported; name a class such as keras.optimizers.Adam "
            "(your own module must be on PYTHONPATH)"
        )
    if not callable(found) or (isinstance(found, type) and not issubclass(found, keras.optimizers.Optimizer)):
        raise UserInputError(f"optimizer._target_={target!r}: not a Keras optimizer class")
    return found


def _check_types(target: str, factory: Callable[..., Any], arguments: dict[str, Any]) -> None:
    """Refuses a value whose type differs from the parameter's default: Keras would fail only while training."""
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # no signature to compare with (a builtin)
        return
    for key, value in arguments.items():
        default = parameters[key].default if key in parameters else None
        if isinstance(default, bool):
            expected, fits = "true or false", isinstance(value, bool)
        elif isinstance(default, (int, float)):
            expected, fits = "a number", isinstance(value, (int, float)) and not isinstance(value, bool)
        else:  # no default, None, or a type we do not second-guess
            continue
        if not fits:
            raise UserInputError(
                f"optimizer.{key}={value!r}: {_short(target)} expects {expected} (its default is {default!r})"
            )


def _blamed(message: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """The arguments Keras' message names (learning_rate is `lr`); all of them if it names none."""
    named = {
        key: value
        for key, value in arguments.items()
        if re.search(rf"\b{re.escape('learning_rate' if key == 'lr' else key)}\b", message)
    }
    return named or arguments


def _short(target: str) -> str:
    return target.rsplit(".", 1)[-1]
