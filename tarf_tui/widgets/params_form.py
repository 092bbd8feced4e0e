"""A params form generated from a method's ``Params`` dataclass (engine/methods/params.py):
one input per field, the default as placeholder, the field's comment as help, and inline
validation through ``resolve_params`` (the same check the engine applies)."""

from __future__ import annotations

import json
from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, Label, Static

from engine.errors import TarfError
from engine.methods.params import CATALOG, param_fields, resolve_params


def _parse(raw: str, tp: str) -> Any:
    raw = raw.strip()
    if tp == "str":
        return raw
    if tp == "bool":
        if raw.lower() in ("true", "1", "yes"):
            return True
        if raw.lower() in ("false", "0", "no"):
            return False
        raise TarfError(f"expected true or false, got {raw!r}")
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        raise TarfError(f"expected a number, got {raw!r}") from None


class ParamsForm(Vertical):
    """``values()`` returns the overrides the user typed (validated); ``errors`` maps field ->
    one-line reason for fields that are invalid now."""

    def __init__(self, method: str, dataset: str = "synthetic", category: str | None = None,
                 values: dict[str, Any] | None = None, global_epochs: int | None = None, **kw):
        super().__init__(**kw)
        self.global_epochs = global_epochs  # the builder's epochs field: wins over this form's
        self._initial = dict(values or {})
        self.method = method
        self.dataset = dataset
        self.category = category
        self.fields = param_fields(method)
        self.errors: dict[str, str] = {}
        self._values: dict[str, Any] = {}

    def compose(self) -> ComposeResult:
        info = CATALOG.get(self.method)
        yield Label(f"[b]{info.title}[/b] [dim]{info.description}[/dim]", classes="form-title")
        defaults = self._effective_defaults()
        for f in self.fields:
            with Horizontal(classes="param-row"):
                yield Label(f["name"], classes="param-name")
                yield Input(placeholder=str(defaults.get(f["name"], f["default"])),
                            id=f"p-{self.method}-{f['name']}".replace(".", "_"),
                            classes="param-input", tooltip=f["help"], compact=True)
                yield Static(f"[dim]{f['help']}[/dim]", classes="param-help",
                             id=f"e-{self.method}-{f['name']}".replace(".", "_"))

    def on_mount(self) -> None:
        if self._initial:
            self.set_values(self._initial)
        if self.global_epochs is not None:
            self.set_global_epochs(self.global_epochs, force=True)

    def _ids(self, name: str) -> tuple[str, str]:
        base = f"{self.method}-{name}".replace(".", "_")
        return f"#p-{base}", f"#e-{base}"

    def set_global_epochs(self, n: int | None, force: bool = False) -> None:
        """The builder's global epochs override this form's ``epochs``: the field shows the
        value that will run (and is locked) while the global field is set."""
        if (n == self.global_epochs and not force) or not any(f["name"] == "epochs" for f in self.fields):
            self.global_epochs = n
            return
        self.global_epochs = n
        inp_id, help_id = self._ids("epochs")
        inp = self.query_one(inp_id, Input)
        f = next(f for f in self.fields if f["name"] == "epochs")
        if n is None:
            inp.disabled = False
            inp.placeholder = str(self._effective_defaults().get("epochs", f["default"]))
            self._check(f, inp.value)
        else:
            inp.disabled = True
            inp.placeholder = f"{n} (global)"
            self.query_one(help_id, Static).update(
                f"[yellow]{n}: the global epochs field sets every method's epochs[/yellow]"
                + (f" [dim](this form's {inp.value} is not used)[/dim]" if inp.value.strip() else ""))

    def effective(self) -> dict[str, Any]:
        """The params that will run: defaults, this form's overrides, the global epochs."""
        out = {**self._effective_defaults(), **self._values}
        if self.global_epochs is not None and "epochs" in out:
            out["epochs"] = self.global_epochs
        return out

    def _effective_defaults(self) -> dict[str, Any]:
        try:
            import dataclasses
            return dataclasses.asdict(resolve_params(self.method, {}, self.dataset, None, None,
                                                     self.category))
        except TarfError:
            return {}

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        name = next((f for f in self.fields
                     if event.input.id == f"p-{self.method}-{f['name']}".replace(".", "_")), None)
        if name is None:
            return
        self._check(name, event.value)

    def _check(self, f: dict, raw: str) -> None:
        err_w = self.query_one(f"#e-{self.method}-{f['name']}".replace(".", "_"), Static)
        key = f["name"]
        self._values.pop(key, None)
        self.errors.pop(key, None)
        if raw.strip():
            try:
                v = _parse(raw, f["type"])
                resolve_params(self.method, {**self._values, key: v}, self.dataset, None, None,
                               self.category)
                self._values[key] = v
            except TarfError as e:
                self.errors[key] = str(e)
        err_w.update(f"[red]✗ {self.errors[key]}[/red]" if key in self.errors
                     else f"[dim]{f['help']}[/dim]")
        self.set_class(bool(self.errors), "invalid")

    def set_context(self, dataset: str, category: str | None) -> None:
        """Dataset / task category changed: show the defaults that now apply (TARF's k)."""
        if (dataset, category) == (self.dataset, self.category):
            return
        self.dataset, self.category = dataset, category
        defaults = self._effective_defaults()
        for f in self.fields:
            w = self.query_one(f"#p-{self.method}-{f['name']}".replace(".", "_"), Input)
            if not (f["name"] == "epochs" and self.global_epochs is not None):
                w.placeholder = str(defaults.get(f["name"], f["default"]))

    def values(self) -> dict[str, Any]:
        """The overrides typed (a locked epochs field, see ``set_global_epochs``, is left out)."""
        out = dict(self._values)
        if self.global_epochs is not None:
            out.pop("epochs", None)
        return out

    def set_values(self, values: dict[str, Any]) -> None:
        """Fill inputs from a spec's params (re-open the builder from a run)."""
        defaults = self._effective_defaults()
        for f in self.fields:
            if f["name"] in values and values[f["name"]] != defaults.get(f["name"], f["default"]):
                w = self.query_one(f"#p-{self.method}-{f['name']}".replace(".", "_"), Input)
                w.value = str(values[f["name"]])
                self._check(f, w.value)
