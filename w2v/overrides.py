"""The command line's overrides, checked against the schema before Hydra sees them.

Hydra reports a bad override as several lines and exit status 1, and accepts an unknown key
given with ``+``. :func:`check_overrides` reads the same arguments with Hydra's own parser
and refuses, with one line naming the key and the fix, what Hydra would refuse or quietly
ignore: unknown keys (``+`` or not, with a suggestion for a misspelt one), values of the
wrong type, unknown config group options, and sweeps without ``-m``. :func:`resume_in_place`
makes ``train.resume=RUN_FOLDER`` continue in that folder.

This module and :mod:`w2v.train` are the only ones that know Hydra: both sit at the edge
of the command line.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from .config import Config

CONF = Path(__file__).resolve().parent / "conf"


def groups() -> Dict[str, List[str]]:
    """The config groups of ``conf/`` and their options, e.g. ``{"data": ["default", "text8"], ...}``."""
    return {d.name: sorted(p.stem for p in d.glob("*.yaml")) for d in sorted(CONF.iterdir()) if d.is_dir()}


def schema_keys() -> Dict[str, Tuple[Any, Any]]:
    """Every key of the schema, dotted, with its type and default: ``{"model.dim": (int, 100), ...}``."""
    keys = {}
    root = Config()
    for section in dataclasses.fields(Config):
        node = getattr(root, section.name)
        hints = typing.get_type_hints(type(node))
        for f in dataclasses.fields(node):
            keys[f"{section.name}.{f.name}"] = (hints[f.name], getattr(node, f.name))
    return keys


def _describe(kind) -> str:
    """``int`` -> ``an integer``; ``Optional[int]`` -> ``an integer or null``; ``List[str]`` -> ``a list``."""
    args = typing.get_args(kind)
    if typing.get_origin(kind) is typing.Union and type(None) in args:
        inner = [a for a in args if a is not type(None)][0]
        return f"{_describe(inner)} or null"
    if typing.get_origin(kind) in (list, List):
        return "a list"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(kind, str(kind))


def _example(key: str, default: Any) -> str:
    if isinstance(default, bool):
        return f"{key}={str(default).lower()}"
    if isinstance(default, list):
        return f"{key}=[{','.join(map(str, default))}]"
    if default is None:
        return f"{key}=null"
    if isinstance(default, str) and ("/" in default or not default):
        return f"{key}=PATH" if "/" in default else f"{key}=VALUE"
    return f"{key}={default}"


def suggest(key: str, known: Sequence[str]) -> Optional[str]:
    """The known key ``key`` was probably meant to be, if any.

    >>> suggest("model.dimm", ["model.dim", "train.lr"])
    'model.dim'
    >>> suggest("train.dim", ["model.dim", "train.lr"])
    'model.dim'
    """
    leaf = key.rsplit(".", 1)[-1]
    same_leaf = [k for k in known if k.rsplit(".", 1)[-1] == leaf]
    if len(same_leaf) == 1:
        return same_leaf[0]
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.75)
    if close:
        return close[0]
    close = difflib.get_close_matches(leaf, [k.rsplit(".", 1)[-1] for k in known], n=1, cutoff=0.8)
    return next((k for k in known if close and k.endswith("." + close[0])), None)


def parse(argv: Sequence[str]):
    """Hydra's reading of ``argv``: ``(flags, overrides)``, both as Hydra's own objects."""
    from hydra._internal.utils import get_args_parser
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    args, extra = get_args_parser().parse_known_args(list(argv))
    texts = list(args.overrides) + [a for a in extra if not a.startswith("-")]
    parsed = []
    for text in texts:
        try:
            parsed += OverridesParser.create().parse_overrides([text])
        except OverrideParseException as e:
            why = " ".join(str(e).split())
            raise ValueError(
                f"cannot read the override {text!r} ({why}); write it as key=value, e.g. model.dim=300"
            ) from None
    return args, parsed


def _values(override) -> Iterator[Any]:
    """Each value an override stands for (one, or each of a sweep); nothing for an interval sweep."""
    from hydra.core.override_parser.types import Override, ValueType

    if not override.is_sweep_override():
        yield override.value()
    elif override.value_type != ValueType.INTERVAL_SWEEP:
        yield from (Override._convert_value(v) for v in override.sweep_iterator())


def check_overrides(argv: Sequence[str]) -> None:
    """Refuse overrides Hydra would reject in many lines, or accept without effect.

    Args:
        argv: the command line after the program name (flags such as ``-m`` included).

    Raises:
        ValueError: one line that names the key and the fix.
    """
    args, overrides = parse(argv)
    if args.help or args.hydra_help or args.info or args.shell_completion or args.experimental_rerun:
        return
    if args.config_dir or args.config_path or args.config_name:  # another config: Hydra checks it
        return
    from hydra.core.override_parser.types import ValueType
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    options = groups()
    keys = schema_keys()
    typed = OmegaConf.structured(Config)
    for o in overrides:
        key, line = o.key_or_group, o.input_line
        if key == "hydra" or key.startswith(("hydra.", "hydra/")):
            continue
        if o.is_sweep_override() and not args.multirun:
            raise ValueError(f"{line} is a sweep; add -m (--multirun) to run one job per value")
        if key in options:
            _check_choice(o, key, options[key], o.value_type == ValueType.GLOB_CHOICE_SWEEP)
            continue
        if key not in keys:
            hint = suggest(key, list(keys))
            value = line.split("=", 1)[1] if "=" in line else "VALUE"
            fix = f"did you mean {hint}={value}?" if hint else "the keys are listed by --help"
            raise ValueError(f"unknown key {key}; {fix}")
        if o.is_delete():
            raise ValueError(f"{line}: the schema's keys cannot be removed; set {key}=VALUE instead")
        if o.is_add():
            raise ValueError(f"{line}: {key} exists already; set it without the +, {line.lstrip('+')}")
        kind, default = keys[key]
        for value in _values(o):
            try:
                OmegaConf.update(typed.copy(), key, value, merge=True)
            except (OmegaConfBaseException, ValueError, TypeError):
                shown = line.split("=", 1)[1] if "=" in line else value
                raise ValueError(f"{key}={shown}: {key} takes {_describe(kind)}; e.g. {_example(key, default)}") from None


def _check_choice(o, group: str, known: List[str], glob: bool) -> None:
    line = o.input_line
    if o.is_delete():
        raise ValueError(f"{line}: the {group} group cannot be removed; choose one of {group}={','.join(known)}")
    if group == "experiment" and not o.is_add():
        raise ValueError(f"{line}: an experiment is added with +, as in +{line}")
    if group != "experiment" and o.is_add():
        raise ValueError(f"{line}: {group} is chosen already (default); choose another without the +, {line.lstrip('+')}")
    if glob:
        return
    for value in _values(o):
        if value not in known:
            raise ValueError(f"unknown {group}={value}; use one of {', '.join(known)}")


def resume_in_place(argv: Sequence[str]) -> List[str]:
    """``argv``, plus the run's own settings and ``hydra.run.dir=RUN`` when ``train.resume`` names a run to continue.

    A resumed run writes into the folder it resumes, so its TensorBoard curves, checkpoints
    and log continue in one place; its Hydra config goes to ``.hydra/resumed-DATE_TIME/``,
    beside the first run's. It runs with the overrides that run was started (or last
    resumed) with, those given now replacing theirs, so ``train.resume=RUN`` alone goes on
    as the run went. ``train.resume`` names the run folder itself, or a checkpoint in its
    ``checkpoints/`` folder. An explicit ``hydra.run.dir``, or ``-m``, keeps Hydra's own
    choice (and the settings given).
    """
    argv = list(argv)
    args, overrides = parse(argv)
    if args.multirun or any(o.key_or_group == "hydra.run.dir" for o in overrides):
        return argv
    resume = [o.value() for o in overrides if o.key_or_group == "train.resume" and not o.is_sweep_override()]
    if not resume or not isinstance(resume[-1], str):
        return argv
    path = Path(resume[-1]).expanduser()
    if path.is_file() and path.parent.name == "checkpoints":
        path = path.parent.parent
    if not path.is_dir():
        return argv
    quoted = str(path.resolve()).replace("\\", "\\\\").replace("'", "\\'")
    carried = run_settings(path, {o.key_or_group for o in overrides})
    # The resumed run's config goes beside the first run's, which it does not replace.
    return argv + carried + [f"hydra.run.dir='{quoted}'", "hydra.output_subdir='.hydra/resumed-${now:%Y-%m-%d_%H-%M-%S}'"]


def run_settings(run: Path, given=frozenset()) -> List[str]:
    """The overrides the run in folder ``run`` was started (or last resumed) with, but for the keys ``given``.

    Read from Hydra's ``.hydra/overrides.yaml`` (or the newest ``.hydra/resumed-*/``);
    ``train.resume`` and ``hydra.*`` are left out. A folder without them gives none.
    """
    import yaml

    saved = [run / ".hydra" / "overrides.yaml", *sorted(run.glob(".hydra/resumed-*/overrides.yaml"))]
    saved = [f for f in saved if f.is_file()]
    try:
        texts = yaml.safe_load(saved[-1].read_text(encoding="utf-8")) if saved else []
    except (OSError, UnicodeError, yaml.YAMLError):
        return []
    carried = []
    for text in texts if isinstance(texts, list) else []:
        try:
            (override,) = parse([str(text)])[1]
        except ValueError:
            continue
        key = override.key_or_group
        if key not in given and key != "train.resume" and not key.startswith("hydra."):
            carried.append(str(text))
    return carried
