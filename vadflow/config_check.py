"""Config mistakes fail before any data is read, in one line that names the key.

Hydra itself refuses an override of a key that does not exist (``dataset.seg_lenn=16``), but its
``+`` form adds any key, and a key nothing reads would train silently with the typo. So every key
of the dataset, method model, loss and trajectory nodes must be an option of the code that reads
it: the ``_target_``'s constructor (or the dataset's ``PoseDataModule``, the synthetic
generator). A node takes free options only where that code takes ``**kwargs``. Enumerated options
(``missing_joints``, ``short_tracks``, ``protocols``, ...) are checked here too, and so are the
switches of every node (the options its code annotates ``bool``: ``flip``, ``track_ends``,
``train_visible_only``, ...), which must be true or false.
"""
from __future__ import annotations

import difflib
import inspect
from typing import Callable

from omegaconf import DictConfig, OmegaConf

from vadflow.data.types import ConfigError
from vadflow.scoring.evaluator import PROTOCOL_KEYS, protocols_of


# keys of a dataset node that PoseDataModule does not take: read by the prepare step or the table
DATASET_KEYS_READ_ELSEWHERE = {"root", "description", "n_joints", "in_channels", *PROTOCOL_KEYS}  # protocol keys: vadflow.scoring
# the layout every reader writes (OpenPose-18, (x, y)); the models size themselves from these keys
DATASET_LAYOUT = {"n_joints": 18, "in_channels": 2}
# enumerated options of the dataset node: key -> allowed values
DATASET_CHOICES = {"missing_joints": ("impute", "zeros"), "short_tracks": ("skip", "reflect", "edge")}


def parameters(fn: Callable) -> tuple[set[str], bool]:
    """(named parameters, takes free options) of a callable. A class's constructor that passes
    ``**kwargs`` on to its base's takes the base's parameters too (:func:`constructors`); only a
    ``**kwargs`` that reaches no further constructor takes free options."""
    if inspect.isclass(fn):
        return set().union(*(parameters(init)[0] for init in constructors(fn))), False
    sig = inspect.signature(fn)
    named = {n for n, p in sig.parameters.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and n != "self"}
    return named, any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())


def constructors(cls: type) -> list[Callable]:
    """The constructors that read a class's options: its own, then its bases' up the MRO for as
    long as each passes ``**kwargs`` on. Classes outside vadflow (torch.nn.Module and the like)
    take no options."""
    found = []
    for base in cls.__mro__:
        init = base.__dict__.get("__init__")
        if init is None:
            continue
        if base.__module__.split(".")[0] != "vadflow":
            break
        found.append(init)
        if not parameters(init)[1]:  # no **kwargs: no further constructor reads the node
            break
    return found


def unknown_key(path: str, key: str, known: set[str], what: str) -> ConfigError:
    close = difflib.get_close_matches(key, sorted(known), n=3)
    hint = f" (did you mean {', '.join(f'{path}.{c}' for c in close)}?)" if close else f" (known: {', '.join(sorted(known))})"
    return ConfigError(f"config key {path}.{key} is not an option of {what}{hint}")


def check_keys(node: dict, path: str, fn: Callable, what: str, extra: set[str] = frozenset(), free_ok: bool = True) -> None:
    named, free = parameters(fn)
    if free and free_ok:
        return
    for key in node:
        if not str(key).startswith("_") and key not in named | set(extra):
            raise unknown_key(path, str(key), named | set(extra), what)


def check_target(node, path: str, extra: set[str] = frozenset()) -> None:
    """A ``_target_`` node: the target must exist and every key must be one of its parameters."""
    from hydra.utils import get_object

    if not isinstance(node, dict) or "_target_" not in node:
        return
    try:
        target = get_object(node["_target_"])
    except Exception as exc:  # noqa: BLE001 - any import failure is the same config mistake
        raise ConfigError(f"{path}._target_: cannot import {node['_target_']!r} ({exc})") from None
    check_keys(node, path, target, node["_target_"].rsplit(".", 1)[-1], extra)
    check_switches(node, path, target)
    for key, value in node.items():  # nested instantiated nodes (e.g. a method's sub-networks)
        if isinstance(value, dict) and "_target_" in value:
            check_target(value, f"{path}.{key}")


def switches(fn: Callable) -> set[str]:
    """The options of ``fn`` annotated ``bool`` (for a class, those of every constructor that reads
    its options, :func:`constructors`): a switch given as ``yes`` or ``1`` would otherwise reach
    the code as a string or an int, and ``if value:`` would read ``"false"`` as on."""
    if inspect.isclass(fn):
        return set().union(*(switches(init) for init in constructors(fn)))
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # a builtin without a signature: nothing to check
        return set()
    return {name for name, p in params.items() if p.annotation in ("bool", bool)}


def check_switches(node: dict, path: str, fn: Callable) -> None:
    for key in switches(fn):
        if key in node and not isinstance(node[key], bool):
            raise ConfigError(f"{path}.{key} must be true or false, got {node[key]!r}")


def check_choice(value, allowed, key: str) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} is not one of {', '.join(map(str, allowed))}")


def check_dataset(ds: dict, path: str = "dataset") -> None:
    from vadflow.data.datamodule import PoseDataModule
    from vadflow.data.injected import check_selection
    from vadflow.data.synthetic import generate_synthetic
    from vadflow.scoring import PROTOCOLS

    # PoseDataModule's **_protocol_keys are the evaluator's (vadflow.scoring.protocols_of): not free options
    check_keys(ds, path, PoseDataModule.__init__, "the dataset", DATASET_KEYS_READ_ELSEWHERE, free_ok=False)
    for key, allowed in DATASET_CHOICES.items():
        if key in ds:
            check_choice(ds[key], allowed, f"{path}.{key}")
    check_switches(ds, path, PoseDataModule.__init__)
    check_selection(ds.get("selection"), ds.get("val_fraction"), ds.get("contamination"), ds.get("selection_kinds"), ds.get("selection_event_len"))
    for key, value in DATASET_LAYOUT.items():
        if key in ds and ds[key] != value:
            raise ConfigError(f"{path}.{key}={ds[key]}: every reader writes OpenPose-18 (x, y) windows, so {key} must be {value}")
    for protocol in ds.get("protocols") or ():
        check_choice(protocol, tuple(PROTOCOLS), f"{path}.protocols")
    try:
        protocols_of(ds)  # MoCoDAD settings, smoothing: wrong ones fail before any data is read
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if isinstance(ds.get("synthetic"), dict):
        check_keys(ds["synthetic"], f"{path}.synthetic", generate_synthetic, "the synthetic generator")


def check_trajectory(node: dict) -> None:
    from vadflow.build import FRAME_TARGET, STREAM_KEYS
    from vadflow.methods.trajectory_aware import COMBINE_RULES, DEFAULT_COMBINE, TrajectoryAware
    from vadflow.nn.trajectory import FEATURES

    if node.get("_target_") == FRAME_TARGET:  # camera coordinates: the wrapper's own keys only
        from vadflow.methods.frame_windows import REFERENCES

        check_target(node, "trajectory")
        check_choice(node.get("reference", "camera"), REFERENCES, "trajectory.reference")
        return
    if "stream" in node:  # GMFC-VAE's own global stream: options of the method's model
        for key in node:
            if key not in STREAM_KEYS:
                raise unknown_key("trajectory", str(key), STREAM_KEYS, "trajectory=stream")
        from vadflow.methods.gmfcvae import GLOBAL_FUSIONS, GLOBAL_SCORES

        check_choice(node["stream"], ("global",), "trajectory.stream")
        check_choice(node.get("fusion", "sum"), GLOBAL_FUSIONS, "trajectory.fusion")
        check_choice(node.get("score", "energy_recon"), GLOBAL_SCORES, "trajectory.score")
        return
    wrapper, _ = parameters(TrajectoryAware)
    check_target(node, "trajectory", extra=wrapper - {"pose", "trajectory"})
    check_switches(node, "trajectory", TrajectoryAware.__init__)
    check_choice(node.get("combine", DEFAULT_COMBINE), COMBINE_RULES, "trajectory.combine")
    check_choice(node.get("features", "frames"), FEATURES, "trajectory.features")
    from vadflow.methods.trajectory_aware import STATISTICS_SPLITS

    check_choice(node.get("statistics", "training"), STATISTICS_SPLITS, "trajectory.statistics")


def check_config(cfg: DictConfig | dict) -> None:
    """Every node a command reads: raise :class:`ConfigError` on the first key or value it cannot use."""
    plain = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    if isinstance(plain.get("dataset"), dict):
        check_dataset(plain["dataset"])
    method = plain.get("method")
    if isinstance(method, dict) and isinstance(method.get("model"), dict):
        check_target(method["model"], "method.model", extra={"objective"})
        check_composed_groups(plain, method)
    if isinstance(plain.get("loss"), dict):
        check_target(plain["loss"], "loss")
    if isinstance(plain.get("trajectory"), dict):
        check_trajectory(plain["trajectory"])
        held_out = plain["trajectory"].get("statistics") == "held_out"
        if held_out and not float((plain.get("dataset") or {}).get("val_fraction", 0.0)) > 0:
            raise ConfigError("trajectory.statistics=held_out needs normal training clips held out of training: "
                              "set dataset.val_fraction (e.g. ++dataset.val_fraction=0.1)")


def check_composed_groups(plain: dict, method: dict) -> None:
    """A backbone or conditioner chosen for a method that builds nothing from it is a mistake, not
    a no-op (``method=height_baseline backbone=dual_space``)."""
    for group in ("backbone", "conditioner"):
        if plain.get(group) and group not in method["model"]:
            from hydra.utils import get_object

            chosen = getattr(get_object(plain[group]["_target_"]), "name", plain[group]["_target_"]) if "_target_" in plain[group] else "?"
            raise ConfigError(f"{group}={chosen}: method {method.get('name', '?')} takes no {group}")

