"""Before Hydra runs: "did you mean" for a typo'd key, and how to quote a value Hydra's grammar refuses."""

from __future__ import annotations

import difflib
import re
import sys
from collections.abc import Sequence

from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import ConfigCompositionException, OverrideParseException
from omegaconf import DictConfig, OmegaConf

from inpainting.resources import conf_dir

_MISSING_KEY = re.compile(r"Could not override '([^']+)'")


def unknown_key_hint(config_name: str, overrides: Sequence[str]) -> str | None:
    """The message for a ``key=value`` override whose key does not exist, with the closest existing keys.

    Hydra says only "Key 'batchsize' is not in struct"; this composes the config once more (a fraction of a
    second, only when Hydra is about to fail the same way) to find what was meant. None when composition works
    or fails for another reason (Hydra's own message is then the right one).
    """
    plain = [o for o in overrides if not o.startswith(("-", "hydra.", "hydra/"))]
    try:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            compose(config_name=config_name, overrides=plain)
            return None
    except OverrideParseException as error:
        return override_parse_hint(error)
    except ConfigCompositionException as error:
        match = _MISSING_KEY.search(str(error))
        if match is None:
            return None
        key = match.group(1)
        parent_path, _, leaf = key.rpartition(".")
        groups = [o for o in plain if "=" in o and (conf_dir() / o.split("=", 1)[0].lstrip("+~")).is_dir()]
        try:
            with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
                cfg = compose(config_name=config_name, overrides=groups)
        except ConfigCompositionException:
            return None
        parent = OmegaConf.select(cfg, parent_path) if parent_path else cfg
        if not isinstance(parent, DictConfig):
            return None
        close = difflib.get_close_matches(leaf, [str(k) for k in parent], n=3, cutoff=0.6)
        where = f"`{parent_path}`" if parent_path else "the top level"
        hint = f"; did you mean {' or '.join(f'`{c}`' for c in close)}?" if close else ""
        return (
            f"Could not override '{key}': {where} has no key `{leaf}`{hint} "
            f"(keys there: {', '.join(sorted(map(str, parent)))}; to add a new key use +{key}=...)"
        )


def override_parse_hint(error: OverrideParseException) -> str:
    """One line for an override Hydra's grammar refuses: which one, and how to quote a value with spaces,
    non-ASCII letters or other special characters (Hydra's own message is a lexer trace)."""
    key, _, value = str(error.override).partition("=")
    example = f"'{key}=\"{value}\"'" if value else "'data.root=\"/my photos\"'"
    return (
        f"cannot parse the override {error.override!r}: quote a value holding spaces, non-ASCII letters or "
        f"special characters, e.g. {example} (single quotes for the shell, double quotes for Hydra)"
    )


def exit_on_unknown_key(config_name: str, argv: Sequence[str] | None = None) -> None:
    """Before ``@hydra.main`` runs: a typo'd key gets "did you mean" and exit 1 (no run dir is created)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if any(a.startswith("-") for a in args):  # --multirun, --help, --cfg: leave them to Hydra
        return
    for arg in args:  # hydra.* overrides are not composed below, but Hydra's parser refuses them all the same
        try:
            OverridesParser.create().parse_overrides([arg])
        except OverrideParseException as error:
            print(f"Error: {override_parse_hint(error)}", file=sys.stderr)
            sys.exit(1)
    hint = unknown_key_hint(config_name, args)
    if hint:
        print(f"Error: {hint}", file=sys.stderr)
        sys.exit(1)
