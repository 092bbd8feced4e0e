"""The paper's Table 1 layout from store rows: one block per experiment (runs grouped by their
``experiment`` key), rows = methods in catalogue order, columns UA, RA, TA, MIA, Gap (%) and
RTE (s), each the mean (and sample std when there are two or more seeds) over the finished runs.
The lowest mean Gap of a block (Retrained excluded: it is the reference) is marked best.

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

from .experiment import REFERENCE

FORMATS = ("table", "md", "csv", "json", "latex")
METRICS = ("ua", "ra", "ta", "mia", "gap", "rte_s")
HEADERS = {"ua": "UA", "ra": "RA", "ta": "TA", "mia": "MIA", "gap": "Gap", "rte_s": "RTE (s)"}
PERCENT = ("ua", "ra", "ta", "mia", "gap")  # stored in % by the engine (engine/metrics.py)
_VARIANT_SKIP = ("seed", "device", "data_root", "label")


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
    s = _norm_spec(run)
    out = {"epochs": s.get("epochs"), "lr": s.get("lr"), "batch_size": s.get("batch_size")}
    out.update({f"params.{k}": v for k, v in sorted((s.get("params") or {}).items())})
    return out


def _variant(run: dict) -> str:
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
                    title += " (" + ", ".join(f"{k.removeprefix('params.')}={settings.get(k, '-')}"
                                              for k in differing) + ")"
                block.rows.append(Row(
                    method, title, var, settings,
                    {m: Stat.of(r.get(m) for r in counted) for m in METRICS},
                    sorted(int(r.get("seed") or 0) for r in counted),
                    [r["id"] for r in rs], statuses))
        cands = [row for row in block.rows if row.method != REFERENCE
                 and row.stats["gap"].mean is not None]
        if cands:
            low = min(row.stats["gap"].mean for row in cands)
            for row in cands:
                row.best = row.stats["gap"].mean == low
    return list(blocks.values())


def _differing(settings: list[dict[str, Any]]) -> list[str]:
    keys = sorted({k for s in settings for k in s})
    return [k for k in keys if len({json.dumps(s.get(k), default=str) for s in settings}) > 1]


# ---- rendering -----------------------------------------------------------------------------
def _scale(metric: str, v: float | None) -> float | None:
    """Stored values are shown as they are: UA..Gap in %, RTE in seconds."""
    return v


def row_cells(r: Row, plus: str = "±") -> list[str]:
    """A row's cells in METRICS order. The reference's own Gap is shown as "-", as in the
    paper's tables (it is 0 by definition; JSON and CSV keep the stored value)."""
    return ["-" if m == "gap" and r.method == REFERENCE else cell(m, r.stats[m], plus)
            for m in METRICS]


def cell(metric: str, st: Stat, plus: str = "±") -> str:
    if st.mean is None:
        return "-"
    m = _scale(metric, st.mean)
    digits = 1 if metric == "rte_s" else 2
    s = f"{m:.{digits}f}"
    if st.std is not None:
        s += f" {plus} {_scale(metric, st.std):.{digits}f}"
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
                rec[f"{m}_mean"] = _scale(m, row.stats[m].mean)
                rec[f"{m}_std"] = _scale(m, row.stats[m].std)
            rec["best_gap"] = row.best
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
                      **{m: {"mean": _scale(m, r.stats[m].mean), "std": _scale(m, r.stats[m].std)}
                         for m in METRICS}}
                     for r in b.rows]})
    return json.dumps(data, indent=1, default=str)


def to_csv(blocks: list[Block]) -> str:
    recs = to_records(blocks)
    cols = ["experiment", "dataset", "case_no", "target", "forget", "arch", "method", "title",
            "variant", "n", "seeds", "runs", "statuses",
            *[f"{m}_{k}" for m in METRICS for k in ("mean", "std")], "best_gap"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for r in recs:
        w.writerow({k: ("" if r[k] is None else r[k]) for k in cols})
    return buf.getvalue()


def to_markdown(blocks: list[Block]) -> str:
    if not blocks:
        return "_no runs_\n"
    lines = []
    heads = ["Method", *(HEADERS[m] + (" ↓" if m == "gap" else "") for m in METRICS), "Seeds"]
    for b in blocks:
        lines += [f"**{b.title}**", "", "| " + " | ".join(heads) + " |",
                  "|" + "|".join(["---"] + ["---:"] * (len(heads) - 1)) + "|"]
        for r in b.rows:
            cells = row_cells(r)
            if r.best:
                cells[METRICS.index("gap")] = f"**{cells[METRICS.index('gap')]}**"
            lines.append("| " + " | ".join([r.title, *cells, _runs_note(r)]) + " |")
        lines.append("")
    return "\n".join(lines)


_LATEX_ESCAPE = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
                 "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                 "\\": r"\textbackslash{}"}


def _tex(s: str) -> str:
    return "".join(_LATEX_ESCAPE.get(ch, ch) for ch in str(s))


def to_latex(blocks: list[Block]) -> str:
    """One booktabs tabular: a header, then per experiment a spanning title row and its
    method rows; the best Gap in bold. Needs ``\\usepackage{booktabs}``."""
    ncol = 1 + len(METRICS)
    out = [r"% UA, RA, TA, MIA, Gap in %; RTE in seconds; mean $\pm$ std over seeds",
           r"\begin{tabular}{l" + "r" * len(METRICS) + "}", r"\toprule",
           "Method & " + " & ".join(
               (r"Gap$\downarrow$" if m == "gap" else _tex(HEADERS[m])) for m in METRICS)
           + r" \\"]
    for b in blocks:
        out += [r"\midrule", rf"\multicolumn{{{ncol}}}{{l}}{{\emph{{{_tex(b.title)}}}}} \\",
                r"\midrule"]
        for r in b.rows:
            cells = [_tex(c).replace("PLUSMINUS", r"$\pm$") for c in row_cells(r, plus="PLUSMINUS")]
            if r.best:
                i = METRICS.index("gap")
                cells[i] = rf"\textbf{{{cells[i]}}}"
            out.append(_tex(r.title) + " & " + " & ".join(cells) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}", ""]
    return "\n".join(out)


def to_table(blocks: list[Block], width: int | None = None, color: bool = False) -> str:
    """Rich tables (one per experiment) rendered to text."""
    from rich.console import Console
    from rich.table import Table

    buf = io.StringIO()
    con = Console(file=buf, width=width or 120, force_terminal=color, no_color=not color,
                  highlight=False)
    if not blocks:
        con.print("no runs")
    for b in blocks:
        con.print(b.title, markup=False)
        t = Table()
        t.add_column("Method")
        for m in METRICS:
            t.add_column(HEADERS[m] + (" ↓" if m == "gap" else ""), justify="right")
        t.add_column("Seeds", justify="right")
        for r in b.rows:
            cells = row_cells(r)
            if r.best:
                i = METRICS.index("gap")
                cells[i] = f"[bold]{cells[i]} *[/bold]"
            t.add_row(r.title, *cells, _runs_note(r))
        con.print(t)
    if any(r.best for b in blocks for r in b.rows):
        con.print("UA, RA, TA, MIA, Gap in %; RTE in seconds; mean ± std over seeds; * lowest Gap")
    return buf.getvalue()


def render(blocks: list[Block], fmt: str = "table", width: int | None = None,
           color: bool = False) -> str:
    if fmt not in FORMATS:
        raise UnknownName("format", fmt, FORMATS)
    if fmt == "table":
        return to_table(blocks, width, color)
    return {"md": to_markdown, "csv": to_csv, "json": to_json, "latex": to_latex}[fmt](blocks)


def compare(runs: Iterable[dict], fmt: str = "table", **kw: Any) -> str:
    """``render(build(runs), fmt)``."""
    return render(build(runs), fmt, **kw)
