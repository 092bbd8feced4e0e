"""A virtual table for thousands of runs: only the visible lines are rendered (Textual's line
API), so sorting, filtering and live updates cost the same with 10 or 10,000 rows. (Textual's
DataTable spends ~1 ms per added row, which made re-sorting 1,000 runs take seconds.)"""

from __future__ import annotations

from dataclasses import dataclass

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip


class RunTable(ScrollView, can_focus=True):
    """Columns ``[(key, label, width)]``; ``set_rows(keys, cells)``; a row cursor. Posts
    ``RowChosen`` (enter / double click) and ``HeaderClicked`` (click on the header line)."""

    DEFAULT_CSS = """
    RunTable { background: $surface; }
    RunTable > .run-table--header { text-style: bold; background: $panel; }
    RunTable > .run-table--cursor { background: $accent 50%; text-style: bold; }
    RunTable > .run-table--odd { background: $boost; }
    """
    COMPONENT_CLASSES = {"run-table--header", "run-table--cursor", "run-table--odd"}
    BINDINGS = [
        Binding("up", "move(-1)", "Cursor up", show=False),
        Binding("down", "move(1)", "Cursor down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "jump(0)", "First run", show=False),
        Binding("end", "jump(-1)", "Last run", show=False),
        Binding("enter", "choose", "Detail"),
    ]

    @dataclass
    class RowChosen(Message):
        key: int

    @dataclass
    class HeaderClicked(Message):
        column: str

    def __init__(self, columns: list[tuple[str, str, int]], **kw):
        super().__init__(**kw)
        self.columns = columns
        self.keys: list[int] = []
        self.cells: list[tuple] = []
        self.cursor = 0
        self.hidden: frozenset[str] = frozenset()
        self.gap = 2  # spaces between columns
        self._width = sum(w + 2 for _, _, w in columns)

    def set_hidden(self, keys, gap: int = 2) -> None:
        """Leave the columns ``keys`` out and put ``gap`` spaces between columns (narrow
        terminals); cells keep every column."""
        keys = frozenset(keys)
        if keys == self.hidden and gap == self.gap:
            return
        self.hidden, self.gap = keys, gap
        self._width = sum(w + gap for k, _, w in self.columns if k not in keys)
        self.virtual_size = Size(self._width, len(self.keys) + 1)
        self.refresh()

    # ---- data ----------------------------------------------------------------------------
    def set_rows(self, keys: list[int], cells: list[tuple], keep: int | None = None) -> None:
        current = keep if keep is not None else self.cursor_key
        self.keys, self.cells = keys, cells
        self._index = {k: i for i, k in enumerate(keys)}
        if current in self._index:
            self.cursor = self._index[current]
        self.cursor = max(0, min(self.cursor, len(keys) - 1))
        self.virtual_size = Size(self._width, len(keys) + 1)
        self.refresh()

    def update_row(self, key: int, cells: tuple) -> None:
        i = getattr(self, "_index", {}).get(key)
        if i is not None and self.cells[i] != cells:
            self.cells[i] = cells
            y = i + 1 - int(self.scroll_offset.y)
            if 0 <= y < self.size.height:
                self.refresh_line(y)

    @property
    def row_count(self) -> int:
        return len(self.keys)

    @property
    def cursor_key(self) -> int | None:
        return self.keys[self.cursor] if self.keys and self.cursor < len(self.keys) else None

    # ---- rendering -----------------------------------------------------------------------
    def _cell(self, value, width: int, style: Style) -> list[Segment]:
        t = value if isinstance(value, Text) else Text(str(value))
        t = t.copy()
        t.truncate(width, overflow="ellipsis", pad=True)
        segs = list(t.render(self.app.console))
        return [Segment(s.text, style + s.style if s.style else style) for s in segs] + [
            Segment(" " * self.gap, style)]

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.size.width
        if y == 0:  # header stays on top
            style = self.get_component_rich_style("run-table--header")
            segs = []
            for key, label, w in self.columns:
                if key not in self.hidden:
                    segs += self._cell(Text(label), w, style)
            return Strip(segs).crop(scroll_x, scroll_x + width).extend_cell_length(width, style)
        i = y - 1 + scroll_y
        base = self.rich_style
        if i >= len(self.keys):
            return Strip.blank(width, base)
        style = base
        if i % 2:
            style = base + self.get_component_rich_style("run-table--odd")
        if i == self.cursor and self.has_focus:
            style = base + self.get_component_rich_style("run-table--cursor")
        elif i == self.cursor:
            style = base + Style(reverse=False, bold=True, underline=True)
        segs = []
        for (key, _, w), v in zip(self.columns, self.cells[i]):
            if key not in self.hidden:
                segs += self._cell(v, w, style)
        return Strip(segs).crop(scroll_x, scroll_x + width).extend_cell_length(width, style)

    # ---- cursor --------------------------------------------------------------------------
    def _show_cursor(self) -> None:
        top = int(self.scroll_offset.y)
        visible = max(self.size.height - 1, 1)
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False)
        elif self.cursor >= top + visible:
            self.scroll_to(y=self.cursor - visible + 1, animate=False)
        self.refresh()

    def move_cursor(self, row: int) -> None:
        if self.keys:
            self.cursor = max(0, min(row, len(self.keys) - 1))
            self._show_cursor()

    def action_move(self, d: int) -> None:
        self.move_cursor(self.cursor + d)

    def action_page(self, d: int) -> None:
        self.move_cursor(self.cursor + d * max(self.size.height - 2, 1))

    def action_jump(self, where: int) -> None:
        self.move_cursor(len(self.keys) - 1 if where < 0 else 0)

    def action_choose(self) -> None:
        if self.cursor_key is not None:
            self.post_message(self.RowChosen(self.cursor_key))

    def on_click(self, event) -> None:
        y = event.y
        if y == 0:
            x = event.x + int(self.scroll_offset.x)
            for key, _, w in self.columns:
                if key in self.hidden:
                    continue
                if x < w + self.gap:
                    self.post_message(self.HeaderClicked(key))
                    return
                x -= w + self.gap
            return
        row = y - 1 + int(self.scroll_offset.y)
        if row < len(self.keys):
            self.move_cursor(row)
            if event.chain >= 2:
                self.action_choose()

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()
