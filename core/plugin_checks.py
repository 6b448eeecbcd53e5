"""Checks on a plugin's component classes, made before anything runs.

The registry already refuses a class of the wrong kind, without a name or without pydantic
options. These checks go one step further, to what the cycle will do with the class: call the
kind's methods with fixed arguments. A metric that never implemented ``compute``, or whose
``compute`` takes one argument, is reported by ``tuneloop validate``, ``tuneloop plugins check``
and ``tuneloop plugins install``, naming the plugin and the component, instead of failing in the
middle of a cycle after an hour of training.
"""

from __future__ import annotations

import inspect
from typing import Any

from pydantic import BaseModel

from tuneloop.components import COMPONENT_KINDS, TASKS, Component


def interface_methods(kind: str) -> dict[str, list[str]]:
    """The methods of a kind's base class and the parameters the cycle passes them (no ``self``)."""
    base = COMPONENT_KINDS[kind]
    methods = {}
    for name, value in vars(base).items():
        if not name.startswith("_") and inspect.isfunction(value):
            methods[name] = [parameter for parameter in inspect.signature(value).parameters
                             if parameter != "self"]
    return methods


def required(kind: str, method: str, component: type[Component] | None = None) -> bool:
    """A method a component must implement: the base class's version only raises.

    A metric implements ``compute`` (predictions against references) or, when it sets
    ``measures_model``, ``measure`` (the saved model itself): one of the two, not both.
    """
    if kind == "metrics" and method in ("compute", "measure"):
        measures_model = bool(getattr(component, "measures_model", False))
        return method == ("measure" if measures_model else "compute")
    function = vars(COMPONENT_KINDS[kind])[method]
    return "NotImplementedError" in function.__code__.co_names


def component_problems(kind: str, component: type[Component]) -> list[str]:
    """What is wrong with a registered component class, each as ``<kind> "<name>" ...``."""
    base = COMPONENT_KINDS[kind]
    label = f'{base.kind} "{getattr(component, "name", component.__name__)}"'
    problems = []
    for method, parameters in interface_methods(kind).items():
        signature = f"{method}({', '.join(parameters)})"
        implementation = getattr(component, method, None)
        if implementation is getattr(base, method):
            if required(kind, method, component):
                problems.append(f"{label} does not implement {signature}")
            continue
        if not callable(implementation):
            problems.append(f"{label}: {method} is {type(implementation).__name__}, not a method")
            continue
        try:
            own = inspect.signature(implementation)
        except (TypeError, ValueError):
            continue  # a builtin or C callable: nothing to compare
        # the cycle calls the method on an instance, positionally: self plus the parameters
        static = isinstance(inspect.getattr_static(component, method),
                            (staticmethod, classmethod))
        try:
            own.bind(*([None] * (len(parameters) + (0 if static else 1))))
        except TypeError:
            shown = ", ".join(name for name in own.parameters if name != "self")
            problems.append(f"{label}: {method}({shown}) cannot be called as {signature}")
    tasks = getattr(component, "tasks", ())
    unknown = [task for task in tasks if task not in TASKS] if isinstance(tasks, tuple) else None
    if unknown is None or unknown:
        problems.append(f"{label}: tasks must be a tuple of {', '.join(TASKS)}; got {tasks!r}")
    if kind == "metrics" and not isinstance(getattr(component, "higher_is_better", True), bool):
        problems.append(f"{label}: higher_is_better must be True or False")
    return problems


def component_warnings(kind: str, component: type[Component]) -> list[str]:
    """What is allowed but probably a mistake, for ``tuneloop plugins check``."""
    base = COMPONENT_KINDS[kind]
    label = f'{base.kind} "{component.name}"'
    warnings = []
    options: Any = component.Options
    if isinstance(options, type) and issubclass(options, BaseModel):
        if options.model_config.get("extra") != "forbid":
            warnings.append(f"{label}: its Options accept unknown fields, so a typo in a config "
                            f"is silently ignored; subclass tuneloop.Options")
    if not (component.__doc__ or "").strip() or component.__doc__ == base.__doc__:
        warnings.append(f"{label} has no docstring; `tuneloop plugins show` displays its first "
                        f"line")
    return warnings
