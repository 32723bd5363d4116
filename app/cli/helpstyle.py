"""How `deepclust --help` names values: no type placeholders (typer draws `--version <bool>`,
`--host <str>` and usage lines like `upload [OPTIONS] {file}`), but the conventions of Unix help.

A flag shows nothing after its name; an option shows its explicit metavar (KEY=VALUE, URL),
its choices (zip|onnx), FILE for a path, else its name in capitals (`--host HOST`); an argument
shows as its name in capitals, in the usage line as in the table (`upload [OPTIONS] FILE`,
`show JOB_ID`; an optional one `[NAME]`). Installed once, when app.cli is imported.
"""
from __future__ import annotations

from typer import core


def _argument_name(self) -> str:
    return self.metavar if self.metavar is not None else (self.name or "").upper()


def _argument_usage(self) -> str:
    name = _argument_name(self)
    if not self.required:
        name = f"[{name}]"
    return name + ("..." if self.nargs != 1 else "")


def _argument_type(self, ctx) -> str | None:
    return None  # the name column already says what it is


def _option_type(self, ctx) -> str | None:
    if self.is_flag or self.count:
        return None
    if self.metavar is not None:
        return self.metavar
    desc = getattr(self, "type_descriptor", None)
    if desc is not None:
        if desc.is_choice:
            return "|".join(str(getattr(c, "value", c)) for c in desc.choices or ())
        if desc.is_path or desc.is_file:
            return {"file": "FILE", "dir": "DIR"}.get(desc.path_type, "PATH")
    else:  # a typer on click's own parameter types
        kind = getattr(self, "type", None)
        if getattr(kind, "choices", None):
            return "|".join(str(getattr(c, "value", c)) for c in kind.choices)
        if type(kind).__name__ in ("Path", "File"):
            return "FILE"
    longest = max(self.opts, key=len).lstrip("-")
    name = longest.replace("-", "_").upper()
    return name + ("..." if self.nargs != 1 else "")


def install() -> None:
    """Replace typer's placeholders (where this typer has them; older ones print click's help)."""
    argument, option = core.TyperArgument, core.TyperOption
    if hasattr(argument, "display_name_raw"):
        argument.display_name_raw = property(_argument_name)
    if hasattr(argument, "_usage_display_name"):
        argument._usage_display_name = _argument_usage
    if hasattr(argument, "display_type_rich"):
        argument.display_type_rich = _argument_type
    if hasattr(option, "display_type_rich"):
        option.display_type_rich = _option_type
