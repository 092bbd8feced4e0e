"""The key reference (``?``): every binding, per screen, read from the screens' and widgets'
``BINDINGS`` (so it cannot drift from what the keys do), plus the few keys Textual's own widgets
bring. ``key_reference()`` is also what the README's key section is checked against."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

_NAMES = {"slash": "/", "question_mark": "?", "escape": "Esc", "enter": "Enter", "space": "Space",
          "pageup": "PgUp", "pagedown": "PgDn", "home": "Home", "end": "End", "up": "↑",
          "down": "↓", "tab": "Tab", "shift+tab": "Shift+Tab", "backspace": "Backspace"}


def key_name(key: str) -> str:
    """``ctrl+l`` -> ``ctrl+l``, ``f2`` -> ``F2``, ``slash`` -> ``/``, ``n,escape`` -> ``n / Esc``."""
    out = []
    for k in key.split(","):
        k = k.strip()
        if k in _NAMES:
            out.append(_NAMES[k])
        elif len(k) >= 2 and k[0] == "f" and k[1:].isdigit():
            out.append(k.upper())
        else:
            out.append(k)
    return " / ".join(out)


def _rows(bindings) -> list[tuple[str, str]]:
    rows = []
    for b in bindings:
        if isinstance(b, Binding) and b.description:
            rows.append((key_name(b.key), b.tooltip or b.description))
    return rows


def key_reference() -> list[tuple[str, list[tuple[str, str]]]]:
    """[(section, [(keys, what they do)])]: the app's keys, then each screen's."""
    from ..app import TarfApp
    from ..widgets.case_picker import CasePicker
    from ..widgets.run_table import RunTable
    from .builder import BuilderScreen
    from .compare import CompareScreen
    from .detail import DetailScreen
    from .dialogs import ConfirmScreen, QuitScreen
    from .overlay import OverlayScreen
    from .runs import RunsScreen

    everywhere = _rows(TarfApp.BINDINGS) + [("ctrl+p", "Command palette (every action by name)"),
                                             ("Tab / Shift+Tab", "Next / previous field")]
    return [
        ("Everywhere", everywhere),
        ("Builder (F2)", _rows(BuilderScreen.BINDINGS) + [
            (k, f"Case picker: {what.lower()} under the cursor") for k, what in _rows(CasePicker.BINDINGS)] + [
            ("Enter", "Target tree: choose the node (target, then forgetting data)"),
            ("Space", "Target tree: fold / unfold a node")]),
        ("Runs (F3)", _rows(RunsScreen.BINDINGS) + _rows(RunTable.BINDINGS)),
        ("Run detail (Enter on a run)", _rows(DetailScreen.BINDINGS)),
        ("Overlay (o on marked runs)", _rows(OverlayScreen.BINDINGS)),
        ("Compare (F4)", _rows(CompareScreen.BINDINGS)),
        ("Dialogs", _rows(ConfirmScreen.BINDINGS) + _rows(QuitScreen.BINDINGS)),
    ]


def help_table(current: str | None = None) -> Table:
    t = Table(box=None, padding=(0, 2), show_header=False, expand=False)
    t.add_column(no_wrap=True, style="bold")
    t.add_column()
    for section, rows in key_reference():
        seen = set()
        mark = current is not None and section.lower().startswith(current.lower())
        t.add_row(Text(section, style="bold reverse" if mark else "bold underline"), "")
        for keys, what in rows:
            if (keys, what) in seen:
                continue
            seen.add((keys, what))
            t.add_row(Text(keys, style="yellow"), what)
        t.add_row("", "")
    return t


class HelpScreen(ModalScreen[None]):
    """The key reference; the current screen's section is highlighted. Esc / ? / q closes."""

    BINDINGS = [Binding("escape,question_mark,q", "close", "Close")]

    def __init__(self, current: str | None = None):
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog", id="help"):
            yield Static(Text("Keys · Esc or ? closes · ctrl+p finds any action by name",
                              style="bold"), classes="dialog-question")
            self.table = help_table(self.current)
            yield Static(self.table, id="help-table")

    def action_close(self) -> None:
        self.dismiss(None)
