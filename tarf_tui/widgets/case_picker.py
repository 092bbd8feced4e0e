"""All 27 cases of Table 4 at once: a matrix of (forgetting level L_D, model level L_M) rows by
target level L_T columns, each cell the case number and its category in words and colour.

Main cases (10-13) carry a star; impractical ones a warning sign and are refused unless the
builder's override is on; subset cases are greyed out when the hierarchy has no subset layer.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable
from textual.coordinate import Coordinate

from engine.cases import CASES, Case
from engine.hierarchy import LEVELS

from .common import CATEGORY_SHORT, CATEGORY_STYLE

_CELL: dict[tuple[str, str, str], Case] = {
    (c.forget_level, c.model_level, c.target_level): c for c in CASES}
ROWS = [(ld, lm) for ld in LEVELS for lm in LEVELS]  # 9 rows
COLS = list(LEVELS)  # 3 columns (L_T)
FIRST = 2  # case columns start after the L_D and L_M label columns
SHORT = {"similar-to-all-matched": "≈ all-matched"}  # fits a cell; the status line says it in full


def case_at(row: int, col: int) -> Case:
    ld, lm = ROWS[row]
    return _CELL[(ld, lm, COLS[col])]


def position(no: int) -> tuple[int, int]:
    c = CASES[no - 1]
    return ROWS.index((c.forget_level, c.model_level)), COLS.index(c.target_level)


def case_cell(case: Case, chosen: bool, layers: int, compact: bool = False) -> Text:
    unavailable = case.layers_needed > layers
    mark = "★" if case.main else ("⚠" if not case.practical else " ")
    short = CATEGORY_SHORT if compact else SHORT
    label = f"{mark}{case.no:>3} {short.get(case.category, case.category)}"
    if unavailable:
        return Text(f" {case.no:>3} n/a (K=0)", style="grey35 strike")
    style = CATEGORY_STYLE.get(case.category, "")
    if not case.practical:
        style = "red dim"
    t = Text(label, style=style)
    if chosen:
        t = Text("▶") + t
        t.stylize("reverse")
    return t


class CasePicker(DataTable):
    """The case matrix. Enter (or click) on a cell posts ``CasePicker.Picked``."""

    BINDINGS = [Binding("enter", "select_cursor", "Pick case", show=False)]

    @dataclass
    class Picked(Message):
        case: Case

    @dataclass
    class Hovered(Message):
        case: Case

    def __init__(self, **kw):
        super().__init__(cursor_type="cell", zebra_stripes=False, **kw)
        self.n_layers = 3
        self.chosen = 11

    COMPACT_BELOW = 94  # narrower than this, the short category names (fits 80 columns)

    def on_mount(self) -> None:
        self.compact = False
        self.build()

    def build(self) -> None:
        """Columns and rows: 10 + 10 + 3 x 21 wide (a 100-column pane), or compact
        8 + 8 + 3 x 15 with short category names (an 80-column terminal)."""
        cursor = self.cursor_coordinate
        self.clear(columns=True)
        lw, cw = (8, 15) if self.compact else (10, 21)
        self.add_column(Text("forget L_D" if not self.compact else "L_D", style="bold"), key="ld", width=lw)
        self.add_column(Text("model L_M" if not self.compact else "L_M", style="bold"), key="lm", width=lw)
        for lt in COLS:
            self.add_column(Text(f"target: {lt}" if not self.compact else f"L_T {lt}", style="bold"),
                            key=lt, width=cw)
        for ld, lm in ROWS:
            self.add_row(*self._row_cells(ld, lm), key=f"{ld}/{lm}")
        if cursor.column >= FIRST:
            self.cursor_coordinate = cursor
        else:
            self.move_to(self.chosen)

    def on_resize(self, event) -> None:
        compact = event.size.width < self.COMPACT_BELOW
        if compact != self.compact:
            self.compact = compact
            self.build()

    def _row_cells(self, ld: str, lm: str) -> list:
        first = lm == LEVELS[0]  # name L_D once per block of three rows
        head = [Text(ld if first else "", style="bold"), Text(lm)]
        return head + [case_cell(_CELL[(ld, lm, lt)], _CELL[(ld, lm, lt)].no == self.chosen,
                                   self.n_layers, self.compact) for lt in COLS]

    def redraw(self) -> None:
        for ld, lm in ROWS:
            for lt in COLS:
                c = _CELL[(ld, lm, lt)]
                self.update_cell(f"{ld}/{lm}", lt, case_cell(c, c.no == self.chosen, self.n_layers,
                                                             self.compact))

    def move_to(self, no: int) -> None:
        r, c = position(no)
        self.cursor_coordinate = Coordinate(r, c + FIRST)

    def set_layers(self, layers: int) -> None:
        if layers != self.n_layers:
            self.n_layers = layers
            self.redraw()

    def set_chosen(self, no: int) -> None:
        self.chosen = no
        self.redraw()

    def _case_under_cursor(self) -> Case | None:
        r, c = self.cursor_coordinate
        if c < FIRST:
            return None
        return case_at(r, c - FIRST)

    def on_data_table_cell_highlighted(self, event: DataTable.CellHighlighted) -> None:
        event.stop()
        case = self._case_under_cursor()
        if case is not None:
            self.post_message(self.Hovered(case))

    def on_data_table_cell_selected(self, event: DataTable.CellSelected) -> None:
        event.stop()
        case = self._case_under_cursor()
        if case is not None:
            self.post_message(self.Picked(case))
