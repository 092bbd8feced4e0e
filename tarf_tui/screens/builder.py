"""New experiment: dataset, hierarchy and K, the 27-case picker, the target / forgetting tree with
live partition sizes, methods with their params forms, model, epochs, seeds, device, and how
many engines run at once. Launch expands the grid (``tarf_tui.experiment``), validates every
spec, and queues the runs through the launcher."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import (Button, Checkbox, Collapsible, Header, Input, Label, Select,
                             SelectionList, Static)

from engine.cases import MAIN_CASES, Case, get_case
from engine.datasets import DATASETS
from engine.errors import TarfError
from engine.hierarchy import Hierarchy, builtin_names, load_hierarchy
from engine.methods.params import CATALOG
from engine.spec import RunSpec

from .base import StableFooter, TarfScreen
from ..options import DATASET_SIZES, DEFAULT_METHODS, REFERENCE, parse_seeds
from ..widgets.case_picker import CasePicker
from ..widgets.common import ARCHS, CATEGORY_STYLE, method_title
from ..widgets.hierarchy_tree import HierarchyTree
from ..widgets.params_form import ParamsForm



@lru_cache(maxsize=16)
def _hier(name: str, k: int) -> Hierarchy:
    return load_hierarchy(name, k)


class BuilderScreen(TarfScreen):
    AUTO_FOCUS = "#cases"
    BINDINGS = [
        Binding("ctrl+l", "launch", "Launch", priority=True, tooltip="Launch: plan the grid, reuse finished runs, queue the rest"),
        Binding("ctrl+k", "focus_cases", "Cases", tooltip="Focus the case picker"),
        Binding("ctrl+t", "focus_tree", "Target tree", tooltip="Focus the target / forgetting tree"),
    ]

    def __init__(self):
        super().__init__()
        self.dataset = "synthetic"
        self.hier_name: str | None = None  # None = the dataset's default
        self.subsets = 3
        self.case_no = 11
        self.target = ""
        self.forget: tuple[str, ...] = ()
        self.sizes: dict[str, int] | None = None
        self.availability: dict[str, tuple[bool, str]] = {}
        self._loading = False
        self._pending_spec: dict | None = None

    # ---- layout --------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="builder"):
            with Horizontal(id="builder-top"):
                with Vertical(id="data-col", classes="panel"):
                    yield Label("[b]Data[/b]", classes="section")
                    yield Label("dataset")
                    yield Select([(n, n) for n in DATASETS.names()], value="synthetic",
                                 allow_blank=False, id="dataset", compact=True)
                    yield Static("", id="dataset-avail")
                    yield Label("hierarchy")
                    yield Select([("dataset default", "")] + [(n, n) for n in builtin_names()],
                                 value="", allow_blank=False, id="hierarchy", compact=True)
                    yield Label("subsets K per class (0 = two layers)")
                    yield Input("3", id="subsets", type="integer", compact=True)
                    yield Checkbox("allow impractical", id="allow-impractical", compact=True,
                                   tooltip="run cases whose forgetting level is coarser than "
                                           "the target's (refused otherwise)")
                with Vertical(id="case-col", classes="panel"):
                    with Horizontal(id="case-head"):
                        yield Label("[b]Task case[/b] (Table 4) · enter picks · main cases:",
                                    classes="section")
                        for no in MAIN_CASES:
                            yield Button(f"★ {no}", id=f"main-{no}", classes="main-case", compact=True)
                    yield CasePicker(id="cases")
                    yield Static("", id="case-info")
            with Horizontal(id="builder-mid"):
                with Vertical(id="tree-col", classes="panel"):
                    yield Label("[b]Target & forgetting data[/b] · enter chooses · space "
                                "folds", classes="section")
                    yield HierarchyTree(id="tree")
                    yield Static("", id="sizes")
                with Vertical(id="run-col", classes="panel"):
                    yield Label("[b]Methods[/b] (Retrained reference always added)",
                                classes="section")
                    yield SelectionList[str](
                        *[(f"{i.title:<10} {i.description[:40]}", n, n in DEFAULT_METHODS)
                          for n, i in CATALOG.items()], id="methods", compact=True)
                    with Horizontal(classes="form-row"):
                        yield Label("model", classes="field-name")
                        yield Select([(a, a) for a in ARCHS], value="smallcnn",
                                     allow_blank=False, id="arch", compact=True)
                    with Horizontal(classes="form-row"):
                        yield Label("epochs", classes="field-name")
                        yield Input(placeholder="each method's default (see its form)",
                                    id="epochs", type="integer", compact=True,
                                    tooltip="unlearning epochs of every method; overrides the "
                                            "epochs of each method's form")
                    with Horizontal(classes="form-row"):
                        yield Label("recipe ep", classes="field-name")
                        yield Input(placeholder="recipe's (10 embedded, 30 CIFAR)",
                                    id="recipe-epochs", type="integer", compact=True,
                                    tooltip="epochs of the original model and of Retrained "
                                            "(part of the experiment)")
                    with Horizontal(classes="form-row"):
                        yield Label("seeds", classes="field-name")
                        yield Input("0", placeholder="0,1,2 or 0-4", id="seeds", compact=True)
                    with Horizontal(classes="form-row"):
                        yield Label("device", classes="field-name")
                        yield Select([(d, d) for d in ("auto", "cpu", "cuda", "cuda:0", "cuda:1")],
                                     value="auto", allow_blank=False, id="device", compact=True)
                    with Horizontal(classes="form-row"):
                        yield Label("parallel", classes="field-name")
                        yield Input(str(self.app.queue.workers), id="workers", type="integer", compact=True,
                                    tooltip="engines running at once; the rest wait as queued")
                    with Horizontal(classes="form-row"):
                        yield Label("run on", classes="field-name")
                        yield Select([("this machine (local)", "local"),
                                      ("Slurm (settings: <workspace>/slurm.toml)", "slurm")],
                                     value="local", allow_blank=False, id="executor", compact=True)
            with Collapsible(title="Method parameters (blank = default shown)", id="params",
                             collapsed=True):
                yield Vertical(id="forms")
        with Horizontal(id="launch-bar"):  # outside the scroll: always on screen
            yield Button("Launch (ctrl+l)", variant="success", id="launch", compact=True)
            yield Static("", id="launch-summary")
        yield StableFooter()

    def on_mount(self) -> None:
        self.refresh_case_info(get_case(self.case_no))
        self.sync_forms()
        self.update_task(reset_request=True)
        self.app.bg(lambda: {n: DATASETS.get(n).locate(None) for n in DATASETS.names()},
                    done=self._got_availability, group="avail")
        if self._pending_spec is not None:
            spec, self._pending_spec = self._pending_spec, None
            self.call_after_refresh(self.load_spec, spec)

    # ---- data ----------------------------------------------------------------------------
    def _got_availability(self, avail: dict[str, tuple[bool, str]]) -> None:
        self.availability = avail
        self.show_availability()

    def show_availability(self) -> None:
        w = self.query_one("#dataset-avail", Static)
        if self.dataset not in self.availability:
            w.update("[dim]checking…[/dim]")
            return
        ok, where = self.availability[self.dataset]
        if self.dataset == "synthetic":
            w.update(f"[green]✓ embedded, ready[/green] [dim]({DATASET_SIZES['synthetic']})[/dim]")
        elif ok:
            w.update(f"[green]✓ present[/green] [dim]{where}[/dim]")
        else:
            w.update(f"[red]✗ missing[/red] [dim]{where}[/dim]")

    def hierarchy(self) -> Hierarchy:
        name = self.hier_name or DATASETS.get(self.dataset).default_hierarchy
        return _hier(name, self.subsets)

    @on(Select.Changed, "#dataset")
    def _dataset(self, event: Select.Changed) -> None:
        if str(event.value) == self.dataset:
            return
        self.dataset = str(event.value)
        self.show_availability()
        if not self._loading:
            self.update_task(reset_request=True)

    @on(Select.Changed, "#hierarchy")
    def _hierarchy(self, event: Select.Changed) -> None:
        if (str(event.value) or None) == self.hier_name:
            return
        self.hier_name = str(event.value) or None
        if not self._loading:
            self.update_task(reset_request=True)

    @on(Input.Changed, "#subsets")
    def _subsets(self, event: Input.Changed) -> None:
        try:
            k = int(event.value)
            if k < 0 or k == 1 or k > 64:
                raise ValueError
        except ValueError:
            self.notify("subsets K must be 0 (two layers) or 2..64", severity="error", timeout=3)
            return
        if k == self.subsets:
            return
        self.subsets = k
        if not self._loading:
            self.update_task(reset_request=True)

    @on(Checkbox.Changed, "#allow-impractical")
    def _allow(self, event: Checkbox.Changed) -> None:
        if not event.value and not get_case(self.case_no).practical and not self._loading:
            self.pick_case(get_case(11))
            self.notify("impractical cases refused again: back to case 11", timeout=3)

    # ---- case ----------------------------------------------------------------------------
    def refresh_case_info(self, case: Case) -> None:
        style = CATEGORY_STYLE.get(case.category, "")
        flags = []
        if case.main:
            flags.append(f"[b]★ main case[/b] (Table 1 / Table 2 No. {case.two_layer_no})")
        if not case.practical:
            flags.append("[red]⚠ impractical: L_D coarser than L_T; refused unless allowed[/red]")
        if case.layers_needed > (3 if self.subsets else 2):
            flags.append("[grey50]unavailable: needs the subset layer (K ≥ 2)[/grey50]")
        self.query_one("#case-info", Static).update(
            f"case [b]{case.no}[/b] · [{style}]{case.category}[/{style}] · forget "
            f"[b]{case.forget_level}[/b], model [b]{case.model_level}[/b], target "
            f"[b]{case.target_level}[/b]" + ("\n" + " · ".join(flags) if flags else ""))

    def on_case_picker_hovered(self, event: CasePicker.Hovered) -> None:
        self.refresh_case_info(event.case)

    def on_case_picker_picked(self, event: CasePicker.Picked) -> None:
        self.pick_case(event.case)

    @on(Button.Pressed, ".main-case")
    def _main(self, event: Button.Pressed) -> None:
        no = int(event.button.id.split("-")[1])
        self.query_one(CasePicker).move_to(no)
        self.pick_case(get_case(no))

    def pick_case(self, case: Case) -> bool:
        """Choose ``case``; refused (one-line error) when the hierarchy cannot express it or it
        is impractical without the override."""
        if case.layers_needed > self.hierarchy().layers:
            self.notify(f"case {case.no} needs the subset level; set subsets K ≥ 2 first",
                        severity="error", timeout=5)
            return False
        if not case.practical and not self.query_one("#allow-impractical", Checkbox).value:
            self.notify(f"case {case.no} is impractical (forgetting {case.forget_level} is coarser "
                        f"than the target {case.target_level}); tick 'allow impractical' to run it",
                        severity="error", timeout=6)
            return False
        self.case_no = case.no
        self.query_one(CasePicker).set_chosen(case.no)
        self.refresh_case_info(case)
        self.update_task(reset_request=True)
        return True

    # ---- target / forget / sizes ---------------------------------------------------------
    def update_task(self, reset_request: bool = False) -> None:
        """Hierarchy, K or case changed: refresh the picker, the tree (paper defaults when
        ``reset_request``) and the partition sizes."""
        from engine.task import resolve_request

        try:
            hier = self.hierarchy()
        except TarfError as e:
            self.notify(str(e), severity="error")
            return
        picker = self.query_one(CasePicker)
        picker.set_layers(hier.layers)
        case = get_case(self.case_no)
        if case.layers_needed > hier.layers:  # K went to 0 under a subset case
            case = get_case(11)
            self.case_no = 11
            picker.set_chosen(11)
            self.notify("K = 0: subset cases unavailable; back to case 11", timeout=4)
        self.refresh_case_info(case)
        if reset_request or not self.target:
            try:
                spec = RunSpec(case=case.no, subsets=self.subsets, allow_impractical=True,
                               method=REFERENCE)
                _, self.target, self.forget, _ = resolve_request(spec, hier)
            except TarfError as e:
                self.notify(str(e), severity="error")
                return
        self.query_one(HierarchyTree).configure(hier, case, self.target, self.forget)
        self.sync_forms()
        self.update_sizes()

    def on_hierarchy_tree_changed(self, event: HierarchyTree.Changed) -> None:
        self.target, self.forget = event.target, event.forget
        self.update_sizes()

    def on_hierarchy_tree_refused(self, event: HierarchyTree.Refused) -> None:
        self.notify(event.reason, severity="warning", timeout=4)

    def request_spec(self, method: str = REFERENCE) -> RunSpec:
        return RunSpec(dataset=self.dataset, hierarchy=self.hier_name, subsets=self.subsets,
                       case=self.case_no, target=self.target, forget=self.forget,
                       allow_impractical=not get_case(self.case_no).practical, method=method)

    def update_sizes(self) -> None:
        w = self.query_one("#sizes", Static)
        w.update(f"target [b]{self.target}[/b] · forgetting [b]{', '.join(self.forget)}[/b]\n"
                 "[dim]computing |D_f|, |D_uf|, |D_r|…[/dim]")
        try:
            spec = self.request_spec()
        except TarfError as e:
            w.update(f"[red]{e}[/red]")
            return
        if not self.availability.get(self.dataset, (True, ""))[0]:
            w.update(f"target [b]{self.target}[/b] · forgetting [b]{', '.join(self.forget)}[/b]\n"
                     "[dim]sizes need the dataset's files[/dim]")
            return
        cache = self.app.workspace.cache_dir

        def sizes():
            from engine.task import partition_sizes
            return spec, partition_sizes(spec, cache)

        self.app.bg(sizes, done=self._got_sizes, group="sizes", exclusive=True)

    def _got_sizes(self, result) -> None:
        spec, s = result
        if (spec.target, spec.forget, spec.case) != (self.target, self.forget, self.case_no):
            return  # an older request
        self.sizes = s
        self.query_one("#sizes", Static).update(
            f"target [b]{self.target}[/b] · forgetting [b]{', '.join(self.forget)}[/b]\n"
            f"|D_f| [b yellow]{s['d_f']}[/b yellow]   |D_uf| [b magenta]{s['d_uf']}[/b magenta]"
            f"   |D_r| [b green]{s['d_r']}[/b green]   [dim]|D_t| {s['d_t']} · test_t "
            f"{s['test_t']} · test_r {s['test_r']}[/dim]")

    # ---- methods / params ----------------------------------------------------------------
    @on(SelectionList.SelectedChanged, "#methods")
    def _methods(self, event) -> None:
        self.sync_forms()

    def selected_methods(self) -> list[str]:
        return list(self.query_one("#methods", SelectionList).selected)

    @on(Collapsible.Expanded, "#params")
    def _params_open(self) -> None:
        self.sync_forms()

    def sync_forms(self, values: dict[str, dict] | None = None) -> None:
        """Show the params forms of the chosen methods; forms are mounted when first needed
        (the params section is open, or a run's settings fill them)."""
        chosen = self.selected_methods()
        cat = get_case(self.case_no).category
        values = values or {}
        if not self.query_one("#params", Collapsible).collapsed or values:
            have = {f.method for f in self.query(ParamsForm)}
            box = self.query_one("#forms", Vertical)
            new = [ParamsForm(m, self.dataset, cat, values.get(m), id=f"form-{m}",
                              classes="params-form", global_epochs=self.global_epochs())
                   for m in chosen if m not in have]
            if new:
                box.mount_all(new)
        for form in self.query(ParamsForm):
            form.display = form.method in chosen
            form.set_context(self.dataset, cat)
        self.update_summary()

    def global_epochs(self) -> int | None:
        """The global epochs field (every method's unlearning epochs), or None when blank."""
        raw = self.query_one("#epochs", Input).value.strip()
        return int(raw) if raw.isdigit() and int(raw) > 0 else None

    @on(Input.Changed, "#epochs")
    def _epochs(self, event: Input.Changed) -> None:
        """Every params form shows the global epochs as its effective epochs (never a form
        saying 3 while 10 run)."""
        n = self.global_epochs()
        for form in self.query(ParamsForm):
            form.set_global_epochs(n)
        self.update_summary()

    def update_summary(self) -> None:
        try:
            seeds = parse_seeds(self.query_one("#seeds", Input).value)
        except TarfError:
            seeds = []
        methods = [method_title(m) for m in self.selected_methods() if m != REFERENCE]
        n = (len(methods) + 1) * len(seeds)
        ep = self.global_epochs()
        self.query_one("#launch-summary", Static).update(
            f"[b]{n} runs[/b]: Retrained + {', '.join(methods) or 'no method'} × {len(seeds)} "
            f"seed(s) on case {self.case_no}"
            + (f" · {ep} epochs each (global)" if ep else " · each method's epochs")
            + " · finished ones are reused")

    @on(Input.Changed, "#seeds")
    def _seeds(self, event: Input.Changed) -> None:
        self.update_summary()

    # ---- launch --------------------------------------------------------------------------
    def collect(self) -> dict[str, Any]:
        """The builder's choices as ``experiment.expand`` arguments; raises ``TarfError``."""
        methods = self.selected_methods()
        if not methods:
            raise TarfError("choose at least one method")
        sets = []
        for form in self.query(ParamsForm):
            if form.method not in methods:
                continue
            if form.errors:
                k, why = next(iter(form.errors.items()))
                raise TarfError(f"{form.method}.{k}: {why}")
            sets += [f"{form.method}.{k}={v}" for k, v in form.values().items()]
        case = get_case(self.case_no)
        if not case.practical and not self.query_one("#allow-impractical", Checkbox).value:
            raise TarfError(f"case {case.no} is impractical; tick 'allow impractical' to run it")
        epochs = self.query_one("#epochs", Input).value.strip()
        recipe_epochs = self.query_one("#recipe-epochs", Input).value.strip()
        workers = self.query_one("#workers", Input).value.strip() or "1"
        if not workers.isdigit() or int(workers) < 1:
            raise TarfError("parallel: expected a number of engines >= 1")
        options = {
            "dataset": self.dataset, "hierarchy": self.hier_name, "subsets": self.subsets,
            "case": self.case_no, "target": self.target, "forget": "+".join(self.forget),
            "method": ",".join(methods), "arch": str(self.query_one("#arch", Select).value),
            "epochs": epochs or None, "recipe_epochs": recipe_epochs or None,
            "seed": ",".join(map(str, parse_seeds(self.query_one("#seeds", Input).value))),
            "device": str(self.query_one("#device", Select).value),
            "allow_impractical": not case.practical,
        }
        return {"options": options, "sets": sets, "workers": int(workers)}

    @on(Button.Pressed, "#launch")
    def _launch_button(self) -> None:
        self.action_launch()

    def action_launch(self) -> None:
        if self.app.store.read_only:
            self.notify("read-only workspace: runs can be viewed, not started", severity="error")
            return
        try:
            job = self.collect()
        except TarfError as e:
            self.notify(str(e), severity="error", timeout=6)
            return

        def launched(plan) -> None:
            for w in plan.warnings:
                self.notify(w, severity="warning")
            self.notify(f"{len(plan.to_start)} started, {len(plan.reused)} reused"
                        + (f", {len(plan.joined)} already queued or running" if plan.joined else "")
                        + f" · {job['workers']} at a time")
            self.app.action_show("runs")
            self.app.runs.refresh_now()

        where = str(self.query_one("#executor", Select).value)
        executor = self.app.launcher.executor

        def choose() -> str:
            """New runs go to the chosen executor (tarf_tui.slurm.WorkspaceExecutor.use; a
            missing Slurm or a bad slurm.toml raises a one-line TarfError: nothing starts)."""
            if hasattr(executor, "use"):
                executor.use(where)
            elif where != "local":
                raise TarfError(f"run on {where}: this workspace's launcher runs engines locally only")
            return where

        self.app.bg(choose, launcher=True, group="launch", done=lambda _: self.app.launch(
            job["options"], job["sets"], workers=job["workers"], done=launched))

    def action_focus_cases(self) -> None:
        self.query_one(CasePicker).focus()

    def action_focus_tree(self) -> None:
        self.query_one(HierarchyTree).focus()

    # ---- re-open from a run --------------------------------------------------------------
    def load_spec(self, spec: dict) -> None:
        """Fill the builder from a run's (resolved) spec."""
        if not self.is_mounted or not self.query(CasePicker):
            self._pending_spec = spec  # applied once the screen is composed
            return
        self._loading = True
        try:
            self.query_one("#dataset", Select).value = spec.get("dataset", "synthetic")
            self.dataset = spec.get("dataset", "synthetic")
            hier = spec.get("hierarchy") or ""
            opts = [n for n in builtin_names()]
            default = DATASETS.get(self.dataset).default_hierarchy
            self.hier_name = None if hier in ("", default) or hier not in opts else hier
            self.query_one("#hierarchy", Select).value = self.hier_name or ""
            self.subsets = int(spec.get("subsets", 3))
            self.query_one("#subsets", Input).value = str(self.subsets)
            self.query_one("#allow-impractical", Checkbox).value = bool(spec.get("allow_impractical"))
            self.case_no = int(spec.get("case", 11))
            self.query_one(CasePicker).set_chosen(self.case_no)
            self.query_one(CasePicker).move_to(self.case_no)
            method = spec.get("method", "tarf")
            ml = self.query_one("#methods", SelectionList)
            ml.deselect_all()
            ml.select(REFERENCE)
            ml.select(method)
            self.query_one("#arch", Select).value = spec.get("arch", "smallcnn")
            self.query_one("#epochs", Input).value = str(spec["epochs"]) if spec.get("epochs") else ""
            rec = (spec.get("recipe") or {}).get("epochs")
            self.query_one("#recipe-epochs", Input).value = str(rec) if rec else ""
            self.query_one("#seeds", Input).value = str(spec.get("seed", 0))
            self.query_one("#device", Select).value = spec.get("device", "auto")
            if method != REFERENCE and spec.get("params"):
                forms = {f.method: f for f in self.query(ParamsForm)}
                if method in forms:
                    forms[method].set_values(dict(spec["params"]))
                else:
                    self.sync_forms({method: dict(spec["params"])})
        except TarfError as e:
            self.notify(str(e), severity="error")
        finally:
            self._loading = False
        self.update_task(reset_request=True)
        if spec.get("target"):
            self.target = spec["target"]
            self.forget = tuple(spec.get("forget") or ()) or self.forget
            self.query_one(HierarchyTree).configure(self.hierarchy(), get_case(self.case_no),
                                                    self.target, self.forget)
            self.update_sizes()
        self.show_availability()
        self.notify(f"builder filled from a {method} run of case {self.case_no}")
