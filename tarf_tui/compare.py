"""The paper's Table 1 layout from store rows: one block per experiment (runs grouped by their
``experiment`` key), rows = methods in catalogue order, columns UA, RA, TA, MIA, Gap (%) and
RTE (s), each the mean (and sample std when there are two or more seeds) over the finished runs.
The lowest mean Gap of a block (Retrained excluded: it is the reference) is marked best.
RTE is the run-time efficiency the paper reports: seconds the method spent unlearning (not the
run's wall time, which also covers data, the original model and evaluation). "identified" is
TARF / TARF-I's target identification from the final extras (``identification``: hits of the
truly hidden units among the excluded ones), summed over seeds as ``hits/n``.

Views (``View``): ``blocks`` (one table per experiment, the default) or ``tasks`` (the paper's
Table 1: per dataset and model, rows = methods, one column group per task case); ``sort`` by any
column; ``only_changed`` hides the columns whose values are equal in every row (DVC's
``--only-changed``). Every format (the TUI's compare screen too) renders the same ``Grid``.

Only ``finished`` runs carry numbers; a row whose runs all failed still appears, with its
counts, so a failure is never silently dropped. When one spec finished more than once
(``--rerun``), its newest run counts. The same method with different settings (params, epochs,
lr, batch size) gets one row per setting, labelled with what differs.

Formats: ``table`` (rich), ``md``, ``csv``, ``json``, ``latex`` (a booktabs tabular). Torch-free.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

from engine.cases import get_case
from engine.errors import TarfError, UnknownName
from engine.methods.params import CATALOG, resolve_params
from engine.store import MIA_VARIANTS

from .options import REFERENCE

FORMATS = ("table", "md", "csv", "json", "latex")
METRICS = ("ua", "ra", "ta", "mia", "gap", "rte_s")
HEADERS = {"ua": "UA", "ra": "RA", "ta": "TA", "mia": "MIA", "gap": "Gap", "rte_s": "RTE (s)"}
PERCENT = ("ua", "ra", "ta", "mia", "gap")  # stored in % by the engine (engine/metrics.py)
_VARIANT_SKIP = ("seed", "device", "data_root", "label", "versions")  # versions: see _variant


@dataclass
class Stat:
    mean: float | None = None
    std: float | None = None  # sample std (n - 1); None below two values
    n: int = 0

    @classmethod
    def of(cls, values: Iterable[float | None]) -> "Stat":
        xs = [float(v) for v in values if v is not None and not math.isnan(float(v))]
        if not xs:
            return cls()
        m = sum(xs) / len(xs)
        sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else None
        return cls(m, sd, len(xs))


@dataclass
class Row:
    method: str
    title: str  # the paper's name, plus what differs when a method has several settings
    variant: str  # short hash of the settings
    settings: dict[str, Any]
    stats: dict[str, Stat]
    seeds: list[int]  # seeds of the finished runs counted
    run_ids: list[int]
    statuses: dict[str, int]  # status -> count over the row's runs
    best: bool = False
    identified: tuple[int, int] | None = None  # (hits, n) summed over the counted runs
    mia_attacks: dict[str, "Stat"] = field(default_factory=dict)  # extras.mia_variants

    @property
    def identified_text(self) -> str:
        return "" if self.identified is None else f"{self.identified[0]}/{self.identified[1]}"

    @property
    def n(self) -> int:
        return len(self.seeds)


@dataclass
class Block:
    experiment: str
    dataset: str
    case_no: int | None
    target: str | None
    forget: str | None
    arch: str | None
    rows: list[Row] = field(default_factory=list)

    @property
    def title(self) -> str:
        from engine.cases import get_case

        cat = ""
        try:
            cat = f" ({get_case(int(self.case_no)).category})" if self.case_no else ""
        except Exception:  # an odd row: show what there is
            pass
        return (f"{self.dataset}, case {self.case_no}{cat}: target {self.target}, "
                f"forget {self.forget}; {self.arch} [{self.experiment}]")


def _spec(run: dict) -> dict:
    s = run.get("spec")
    if isinstance(s, str):
        try:
            s = json.loads(s)
        except json.JSONDecodeError:
            s = {}
    return s if isinstance(s, dict) else {}


def _norm_spec(run: dict) -> dict[str, Any]:
    """The run's spec with its method params completed by the defaults. The engine stores the
    resolved spec once it starts, a queued run holds only the user's overrides: without this
    they would look like two settings of one method."""
    s = dict(_spec(run))
    method = run.get("method") or s.get("method")
    try:
        category = get_case(int(run.get("case_no") or s.get("case") or 11)).category
        s["params"] = asdict(resolve_params(method, s.get("params") or {}, s.get("dataset"),
                                            s.get("epochs"), s.get("lr"), category))
    except (TarfError, TypeError, ValueError):
        pass  # an unknown method or a malformed spec: compare it as stored
    return s


def _settings(run: dict) -> dict[str, Any]:
    """What a row's runs were run with: the method params (resolved, so the top-level epochs
    and lr overrides are already in them), the batch size and the recipe epochs."""
    s = _norm_spec(run)
    params = s.get("params") or {}
    out: dict[str, Any] = {k: s.get(k) for k in ("epochs", "lr") if k not in params}
    out["batch_size"] = s.get("batch_size")
    out.update({f"params.{k}": v for k, v in sorted(params.items())})
    return out


def _label(key: str) -> str:
    return key.removeprefix("params.")


def _variant(run: dict) -> str:
    """A short hash of a run's settings (seed, device, paths, label and code/data versions
    aside: a queued spec may predate the versions its engine records)."""
    s = {k: v for k, v in _norm_spec(run).items() if k not in _VARIANT_SKIP}
    s["method"] = run.get("method")
    return hashlib.sha256(json.dumps(s, sort_keys=True, default=str).encode()).hexdigest()[:8]


def _method_order(name: str) -> tuple[int, str]:
    names = CATALOG.names()
    return (names.index(name), name) if name in names else (len(names), name)


def build(runs: Iterable[dict]) -> list[Block]:
    """Store rows (``Store.list_runs`` / ``get_run`` dicts) -> blocks in first-seen order of
    their experiment (oldest run first)."""
    runs = sorted(runs, key=lambda r: r["id"])
    newest: dict[str, dict] = {}  # spec_hash -> newest finished run
    for r in runs:
        if r.get("status") == "finished":
            newest[r.get("spec_hash") or f"id{r['id']}"] = r
    blocks: dict[str, Block] = {}
    groups: dict[str, dict[tuple, list[dict]]] = {}
    for r in runs:
        ek = r.get("experiment") or "?"
        if ek not in blocks:
            s = _spec(r)
            blocks[ek] = Block(ek, r.get("dataset") or s.get("dataset"), r.get("case_no"),
                               r.get("target") or s.get("target"),
                               r.get("forget") or ",".join(s.get("forget") or ()) or None,
                               r.get("arch") or s.get("arch"))
            groups[ek] = {}
        groups[ek].setdefault((r.get("method"), _variant(r)), []).append(r)
    for ek, block in blocks.items():
        by_method: dict[str, list[tuple[str, list[dict]]]] = {}
        for (method, var), rs in groups[ek].items():
            by_method.setdefault(method, []).append((var, rs))
        for method in sorted(by_method, key=_method_order):
            variants = by_method[method]
            differing = _differing([_settings(rs[-1]) for _, rs in variants])
            for var, rs in variants:
                counted = [r for r in rs if r.get("status") == "finished"
                           and newest.get(r.get("spec_hash") or f"id{r['id']}") is r]
                statuses: dict[str, int] = {}
                for r in rs:
                    statuses[r.get("status") or "?"] = statuses.get(r.get("status") or "?", 0) + 1
                settings = _settings(rs[-1])
                title = CATALOG.get(method).title if method in CATALOG else str(method)
                if len(variants) > 1 and differing:
                    title += " (" + ", ".join(f"{_label(k)}={settings.get(k, '-')}"
                                              for k in differing) + ")"
                block.rows.append(Row(
                    method, title, var, settings,
                    {m: Stat.of(r.get(m) for r in counted) for m in METRICS},
                    sorted(int(r.get("seed") or 0) for r in counted),
                    [r["id"] for r in rs], statuses, identified=_identified(counted),
                    mia_attacks=_attacks(counted)))
        cands = [row for row in block.rows if row.method != REFERENCE
                 and row.stats["gap"].mean is not None]
        if cands:
            low = min(row.stats["gap"].mean for row in cands)
            for row in cands:
                row.best = row.stats["gap"].mean == low
    return list(blocks.values())


def _attacks(runs: list[dict]) -> dict[str, "Stat"]:
    """Mean / std of every SVC attack the runs stored (``extras.mia_variants``)."""
    vals: dict[str, list] = {}
    for r in runs:
        extras = r.get("extras")
        v = extras.get("mia_variants") if isinstance(extras, dict) else None
        if isinstance(v, dict):
            for k, x in v.items():
                vals.setdefault(k, []).append(x)
    return {k: Stat.of(vals[k]) for k in MIA_VARIANTS if k in vals}


def _identified(runs: list[dict]) -> tuple[int, int] | None:
    hits = n = 0
    seen = False
    for r in runs:
        ident = (r.get("extras") or {}).get("identification") if isinstance(r.get("extras"), dict) else None
        if isinstance(ident, dict) and isinstance(ident.get("hits"), int) and isinstance(ident.get("n"), int):
            hits, n, seen = hits + ident["hits"], n + ident["n"], True
    return (hits, n) if seen else None


def _differing(settings: list[dict[str, Any]]) -> list[str]:
    keys = sorted({k for s in settings for k in s})
    return [k for k in keys if len({json.dumps(s.get(k), default=str) for s in settings}) > 1]


# ---- rendering -----------------------------------------------------------------------------
def row_cells(r: Row, plus: str = "±") -> list[str]:
    """A row's cells in METRICS order. The reference's own Gap is shown as "-", as in the
    paper's tables (it is 0 by definition; JSON and CSV keep the stored value)."""
    return ["-" if m == "gap" and r.method == REFERENCE else cell(m, r.stats[m], plus)
            for m in METRICS]


def cell(metric: str, st: Stat, plus: str = "±") -> str:
    if st.mean is None:
        return "-"
    digits = 1 if metric == "rte_s" else 2
    s = f"{st.mean:.{digits}f}"
    if st.std is not None:
        s += f" {plus} {st.std:.{digits}f}"
    return s


def _runs_note(row: Row) -> str:
    other = {k: v for k, v in row.statuses.items() if k != "finished"}
    note = str(row.n)
    if other:
        note += " (" + ", ".join(f"{v} {k}" for k, v in sorted(other.items())) + ")"
    return note


def to_records(blocks: list[Block]) -> list[dict]:
    """One flat record per row: the experiment's columns, the row's, and for each metric
    ``<m>_mean`` / ``<m>_std`` (UA..Gap in %, RTE in seconds)."""
    out = []
    for b in blocks:
        for row in b.rows:
            rec = {"experiment": b.experiment, "dataset": b.dataset, "case_no": b.case_no,
                   "target": b.target, "forget": b.forget, "arch": b.arch,
                   "method": row.method, "title": row.title, "variant": row.variant,
                   "n": row.n, "seeds": " ".join(map(str, row.seeds)),
                   "runs": " ".join(map(str, row.run_ids)),
                   "statuses": " ".join(f"{k}:{v}" for k, v in sorted(row.statuses.items()))}
            for m in METRICS:
                rec[f"{m}_mean"] = row.stats[m].mean
                rec[f"{m}_std"] = row.stats[m].std
            rec["best_gap"] = row.best
            rec["identified"] = row.identified_text
            for k in MIA_VARIANTS:
                st = row.mia_attacks.get(k)
                rec[f"mia_{k}_mean"] = None if st is None else st.mean
                rec[f"mia_{k}_std"] = None if st is None else st.std
            out.append(rec)
    return out


def to_json(blocks: list[Block]) -> str:
    data = []
    for b in blocks:
        data.append({
            "experiment": b.experiment, "title": b.title, "dataset": b.dataset,
            "case_no": b.case_no, "target": b.target, "forget": b.forget, "arch": b.arch,
            "units": {m: ("%" if m in PERCENT else "s") for m in METRICS},
            "rows": [{"method": r.method, "title": r.title, "variant": r.variant,
                      "settings": r.settings, "n": r.n, "seeds": r.seeds, "run_ids": r.run_ids,
                      "statuses": r.statuses, "best_gap": r.best,
                      "identified": None if r.identified is None else
                      {"hits": r.identified[0], "n": r.identified[1]},
                      "mia_attacks": {k: {"mean": st.mean, "std": st.std} for k, st in r.mia_attacks.items()},
                      **{m: {"mean": r.stats[m].mean, "std": r.stats[m].std} for m in METRICS}}
                     for r in b.rows]})
    return json.dumps(data, indent=1, default=str)


def csv_text(records: list[dict], cols: list[str] | None = None) -> str:
    """Records as CSV: ``cols`` (default: every key, in first-seen order), None as empty."""
    if cols is None:
        cols = list(dict.fromkeys(k for rec in records for k in rec))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for rec in records:
        w.writerow({k: ("" if rec.get(k) is None else rec.get(k)) for k in cols})
    return buf.getvalue()


def to_csv(blocks: list[Block]) -> str:
    cols = ["experiment", "dataset", "case_no", "target", "forget", "arch", "method", "title",
            "variant", "n", "seeds", "runs", "statuses",
            *[f"{m}_{k}" for m in METRICS for k in ("mean", "std")], "best_gap", "identified",
            *[f"mia_{a}_{k}" for a in MIA_VARIANTS for k in ("mean", "std")]]
    return csv_text(to_records(blocks), cols)


def to_markdown(blocks: list[Block]) -> str:
    """One Markdown table per experiment (the blocks view's grids)."""
    return grids_markdown(grids(blocks))


_LATEX_ESCAPE = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
                 "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                 "\\": r"\textbackslash{}"}


def _tex(s: str) -> str:
    return "".join(_LATEX_ESCAPE.get(ch, ch) for ch in str(s))


def to_latex(blocks: list[Block]) -> str:
    """One booktabs tabular: a header, then per experiment a spanning title row and its
    method rows; the best Gap in bold. Needs ``\\usepackage{booktabs}``."""
    ident = any(r.identified is not None for b in blocks for r in b.rows)
    ncol = 1 + len(METRICS) + ident
    out = [r"% UA, RA, TA, MIA, Gap in %; mean $\pm$ std over seeds; " + _tex(RTE_NOTE),
           r"\begin{tabular}{l" + "r" * (ncol - 1) + "}", r"\toprule",
           "Method & " + " & ".join(
               (r"Gap$\downarrow$" if m == "gap" else _tex(HEADERS[m])) for m in METRICS)
           + (" & identified" if ident else "") + r" \\"]
    for b in blocks:
        out += [r"\midrule", rf"\multicolumn{{{ncol}}}{{l}}{{\emph{{{_tex(b.title)}}}}} \\",
                r"\midrule"]
        for r in b.rows:
            cells = [_tex(c).replace("PLUSMINUS", r"$\pm$") for c in row_cells(r, plus="PLUSMINUS")]
            if r.best:
                i = METRICS.index("gap")
                cells[i] = rf"\textbf{{{cells[i]}}}"
            if ident:
                cells.append(r.identified_text or "-")
            out.append(_tex(r.title) + " & " + " & ".join(cells) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}", ""]
    return "\n".join(out)


# ---- views: one Grid per table, rendered by every format ------------------------------------
VIEWS = ("blocks", "tasks")
RTE_NOTE = "RTE = seconds spent unlearning (the paper's run-time efficiency), not wall time"


@dataclass
class View:
    kind: str = "blocks"  # blocks | tasks
    sort: str | None = None  # a column key or a metric name; "-gap" = descending
    only_changed: bool = False

    def __post_init__(self):
        if self.kind not in VIEWS:
            raise UnknownName("view", self.kind, VIEWS)

    @property
    def is_default(self) -> bool:
        return self.kind == "blocks" and not self.sort and not self.only_changed


@dataclass
class Column:
    key: str  # "ua" (blocks) or "11.ua" (tasks); "title", "seeds"
    header: str
    group: str = ""  # the task group a column belongs to (tasks view)
    metric: str = ""  # the METRICS name (or "identified")


@dataclass
class GridRow:
    method: str
    cells: dict[str, str]  # column key -> text
    values: dict[str, Any]  # column key -> sort value (None sorts last)
    best: set[str] = field(default_factory=set)  # column keys holding a best mark


@dataclass
class Grid:
    title: str
    columns: list[Column]
    rows: list[GridRow]
    experiments: list[str] = field(default_factory=list)


def _metric_columns(rows: list[Row], prefix: str = "", group: str = "") -> list[Column]:
    cols = [Column(prefix + m, HEADERS[m] + (" ↓" if m == "gap" else ""), group, m) for m in METRICS]
    if any(r.identified is not None for r in rows):
        cols.append(Column(prefix + "identified", "identified", group, "identified"))
    return cols


def _fill(gr: GridRow, row: Row, cols: list[Column], prefix: str = "") -> None:
    cells = dict(zip(METRICS, row_cells(row)))
    for c in cols:
        if c.metric == "identified":
            gr.cells[c.key] = row.identified_text or "-"
            gr.values[c.key] = (row.identified[0] / row.identified[1]
                                if row.identified and row.identified[1] else None)
        elif c.metric in METRICS:
            gr.cells[c.key] = cells[c.metric]
            gr.values[c.key] = row.stats[c.metric].mean
    if row.best:
        gr.best.add(prefix + "gap")


def block_grid(b: Block) -> Grid:
    """One experiment's Table 1: rows = method settings; UA .. RTE, identified, seeds."""
    cols = [Column("title", "Method"), *_metric_columns(b.rows), Column("seeds", "Seeds")]
    rows = []
    for r in b.rows:
        gr = GridRow(r.method, {"title": r.title, "seeds": _runs_note(r)},
                     {"title": r.title, "seeds": r.n})
        _fill(gr, r, cols)
        rows.append(gr)
    return Grid(b.title, cols, rows, [b.experiment])


def task_grids(blocks: list[Block]) -> list[Grid]:
    """The paper's Table 1: per dataset and model, one row per method setting and one column
    group per task case (ordered by case number), each with UA .. RTE (and identified)."""
    groups: dict[tuple, list[Block]] = {}
    for b in blocks:
        groups.setdefault((b.dataset, b.arch), []).append(b)
    out = []
    for (dataset, arch), bs in groups.items():
        bs = sorted(bs, key=lambda b: (b.case_no or 0, b.experiment))
        cols = [Column("title", "Method")]
        titles: dict[tuple[str, str], GridRow] = {}
        order: list[tuple[str, str]] = []
        for b in bs:
            cat = ""
            try:
                cat = get_case(int(b.case_no)).category
            except (TarfError, TypeError, ValueError):
                pass
            prefix = f"{b.case_no}." if sum(x.case_no == b.case_no for x in bs) == 1 else f"{b.experiment}."
            group = f"case {b.case_no}" + (f" {cat}" if cat else "")
            bcols = _metric_columns(b.rows, prefix, group)
            cols += bcols
            for r in b.rows:
                key = (r.method, r.title)
                if key not in titles:
                    titles[key] = GridRow(r.method, {"title": r.title}, {"title": r.title})
                    order.append(key)
                _fill(titles[key], r, bcols, prefix)
        rows = [titles[k] for k in sorted(order, key=lambda k: (_method_order(k[0]), k[1]))]
        for gr in rows:  # a method not run on a task: dashes
            for c in cols:
                gr.cells.setdefault(c.key, "-")
                gr.values.setdefault(c.key, None)
        out.append(Grid(f"{dataset}, {arch}: Table 1 over {len(bs)} task(s)", cols, rows,
                        [b.experiment for b in bs]))
    return out


def sort_grid(g: Grid, key: str) -> Grid:
    """Rows sorted by column ``key`` (a column key, a metric name = its first column, or
    ``method``); ``-key`` descending; missing values last; Retrained stays first."""
    desc = key.startswith("-")
    k = key.lstrip("-").strip().lower()
    if k in ("method", "title", "name"):
        k = "title"
    keys = [c.key for c in g.columns]
    if k not in keys:
        k = next((c.key for c in g.columns if c.metric == k), k)
    if k not in keys:
        raise UnknownName("sort column", key, [c.key for c in g.columns if c.key != "seeds"] + ["method"])
    ref = [r for r in g.rows if r.method == REFERENCE]
    rest = [r for r in g.rows if r.method != REFERENCE]
    have = [r for r in rest if r.values.get(k) is not None]
    none = [r for r in rest if r.values.get(k) is None]
    have.sort(key=lambda r: r.values[k], reverse=desc)
    return Grid(g.title, g.columns, ref + have + none, g.experiments)


def only_changed(g: Grid) -> Grid:
    """Without the columns whose text is the same in every row (the Method column stays)."""
    if len(g.rows) < 2:
        return g
    cols = [c for c in g.columns
            if c.key == "title" or len({r.cells.get(c.key) for r in g.rows}) > 1]
    return Grid(g.title, cols, g.rows, g.experiments)


def grids(blocks: list[Block], view: View | None = None) -> list[Grid]:
    """The view's grids: blocks or tasks, then sorted, then the equal columns hidden."""
    view = view or View()
    gs = task_grids(blocks) if view.kind == "tasks" else [block_grid(b) for b in blocks]
    if view.sort:
        gs = [sort_grid(g, view.sort) for g in gs]
    if view.only_changed:
        gs = [only_changed(g) for g in gs]
    return gs


def rich_table(g: Grid, **kw: Any):
    """A ``rich.table.Table`` of one grid (the CLI's table format and the TUI's compare screen):
    column groups in the headers, the best Gap bold with a star, Retrained dimmed."""
    from rich.table import Table
    from rich.text import Text

    t = Table(title=Text(g.title), title_justify="left", **kw)  # Text: "[key]" is not markup
    prev = None
    for c in g.columns:  # a task's label once, over the first column of its group
        head = (f"{c.group}\n{c.header}" if c.group != prev else f"\n{c.header}") if c.group else c.header
        prev = c.group
        t.add_column(head, justify="left" if c.key == "title" else "right")
    for r in g.rows:
        cells: list[Any] = []
        for c in g.columns:
            text = r.cells.get(c.key, "")
            if c.key in r.best:
                cells.append(Text(f"{text} *", style="bold"))
            elif c.key == "title":
                cells.append(Text(text, style="dim" if r.method == REFERENCE else ""))
            else:
                cells.append(Text(text))
        t.add_row(*cells)
    return t


def footnote(gs: list[Grid]) -> str:
    best = any(r.best for g in gs for r in g.rows)
    return ("UA, RA, TA, MIA, Gap in %; mean ± std over seeds; " + RTE_NOTE
            + ("; * lowest Gap" if best else ""))


def grids_table(gs: list[Grid], width: int | None = None, color: bool = False) -> str:
    from rich.console import Console

    buf = io.StringIO()
    con = Console(file=buf, width=width or 120, force_terminal=color, no_color=not color,
                  highlight=False)
    if not gs:
        con.print("no runs")
    for g in gs:
        con.print(rich_table(g))
    if gs:
        con.print(footnote(gs), markup=False)
    return buf.getvalue()


def _headers(g: Grid) -> list[str]:
    return [(f"{c.group} {c.header}" if c.group else c.header) for c in g.columns]


def grids_markdown(gs: list[Grid]) -> str:
    if not gs:
        return "_no runs_\n"
    lines = []
    for g in gs:
        heads = _headers(g)
        lines += [f"**{g.title}**", "", "| " + " | ".join(heads) + " |",
                  "|" + "|".join(["---"] + ["---:"] * (len(heads) - 1)) + "|"]
        for r in g.rows:
            lines.append("| " + " | ".join(
                (f"**{r.cells.get(c.key, '')}**" if c.key in r.best else r.cells.get(c.key, ""))
                for c in g.columns) + " |")
        lines.append("")
    lines.append(footnote(gs))
    return "\n".join(lines) + "\n"


def grids_latex(gs: list[Grid]) -> str:
    out = [r"% UA, RA, TA, MIA, Gap in %; mean $\pm$ std over seeds; " + _tex(RTE_NOTE)]
    for g in gs:
        out += [r"\begin{tabular}{l" + "r" * (len(g.columns) - 1) + "}", r"\toprule",
                rf"\multicolumn{{{len(g.columns)}}}{{l}}{{\emph{{{_tex(g.title)}}}}} \\", r"\midrule",
                " & ".join(_tex(h).replace("↓", r"$\downarrow$") for h in _headers(g)) + r" \\",
                r"\midrule"]
        for r in g.rows:
            cells = []
            for c in g.columns:
                x = _tex(r.cells.get(c.key, "")).replace("±", r"$\pm$")
                cells.append(rf"\textbf{{{x}}}" if c.key in r.best else x)
            out.append(" & ".join(cells) + r" \\")
        out += [r"\bottomrule", r"\end{tabular}", ""]
    return "\n".join(out)


def grids_records(gs: list[Grid]) -> list[dict]:
    out = []
    for g in gs:
        for r in g.rows:
            rec: dict[str, Any] = {"table": g.title, "method": r.method}
            for c in g.columns:
                rec[c.key] = r.cells.get(c.key)
                if c.metric in METRICS:
                    rec[c.key + "_mean"] = r.values.get(c.key)
            out.append(rec)
    return out


def grids_csv(gs: list[Grid]) -> str:
    return csv_text(grids_records(gs))


def grids_json(gs: list[Grid]) -> str:
    return json.dumps([{"title": g.title, "experiments": g.experiments,
                        "columns": [asdict(c) for c in g.columns],
                        "rows": [{"method": r.method, "cells": r.cells, "values": r.values,
                                  "best": sorted(r.best)} for r in g.rows]} for g in gs],
                      indent=1, default=str)


def to_table(blocks: list[Block], width: int | None = None, color: bool = False) -> str:
    """Rich tables (one per experiment) rendered to text."""
    return grids_table(grids(blocks), width, color)


def render(blocks: list[Block], fmt: str = "table", width: int | None = None,
           color: bool = False, view: View | None = None) -> str:
    """``blocks`` in ``fmt`` following ``view`` (default: one table per experiment; JSON and
    CSV of the default view keep their per-row records with means and stds)."""
    if fmt not in FORMATS:
        raise UnknownName("format", fmt, FORMATS)
    view = view or View()
    if fmt == "table":
        return grids_table(grids(blocks, view), width, color)
    if view.is_default:
        return {"md": to_markdown, "csv": to_csv, "json": to_json, "latex": to_latex}[fmt](blocks)
    gs = grids(blocks, view)
    return {"md": grids_markdown, "csv": grids_csv, "json": grids_json, "latex": grids_latex}[fmt](gs)


def compare(runs: Iterable[dict], fmt: str = "table", view: View | None = None, **kw: Any) -> str:
    """``render(build(runs), fmt, view=view)``."""
    return render(build(runs), fmt, view=view, **kw)
