"""The label hierarchy as a tree (superclass > class > subset) for choosing the target concept at
the case's L_T and the forgetting nodes at its L_D inside it. Only valid nodes can be chosen:
other nodes are dimmed and refused with a one-line reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.message import Message
from textual.widgets import Tree

from engine.cases import Case
from engine.hierarchy import RANK, Hierarchy

from ..options import REFERENCE


@dataclass(frozen=True)
class NodeRef:
    level: str
    name: str


class HierarchyTree(Tree[NodeRef]):
    """``configure(hier, case, target, forget)`` then the user picks with enter / click.
    Posts ``Changed`` (target, forget) and ``Refused`` (reason) messages."""

    @dataclass
    class Changed(Message):
        target: str
        forget: tuple[str, ...]

    @dataclass
    class Refused(Message):
        reason: str

    def __init__(self, **kw):
        self.hier: Hierarchy | None = None
        self.case: Case | None = None
        self.target: str = ""
        self.forget: tuple[str, ...] = ()
        super().__init__("hierarchy", **kw)
        self.auto_expand = False
        self.show_root = False

    # ---- state -------------------------------------------------------------------------
    def configure(self, hier: Hierarchy, case: Case, target: str, forget: tuple[str, ...]) -> None:
        rebuild = hier is not self.hier
        self.hier, self.case, self.target, self.forget = hier, case, target, tuple(forget)
        if rebuild or not self.root.children:
            self._populate()
        self._relabel()

    def _populate(self) -> None:
        h = self.hier
        self.clear()
        for s in h.superclasses:
            sn = self.root.add("", data=NodeRef("superclass", s), expand=True)
            for c in h.descendants("superclass", s, "class"):
                if h.subsets:
                    cn = sn.add("", data=NodeRef("class", c), expand=False)
                    for sub in h.descendants("class", c, "subset"):
                        cn.add_leaf("", data=NodeRef("subset", sub))
                else:
                    sn.add_leaf("", data=NodeRef("class", c))

    def _walk(self, node=None):
        node = node or self.root
        for ch in node.children:
            yield ch
            yield from self._walk(ch)

    def valid(self, ref: NodeRef) -> tuple[bool, str]:
        """Whether ``ref`` can be chosen now, and what choosing it does (or why not)."""
        h, case = self.hier, self.case
        lt, ld = case.target_level, case.forget_level
        if ref.level == lt:
            return True, "target"
        if ref.level == ld:
            if case.practical:
                if h.contains(lt, self.target, ld, ref.name):
                    return True, "forget"
                return False, (f"{ref.name} is not inside the target {lt} {self.target!r}; "
                               f"forgetting {ld}s must lie inside it")
            if h.contains(ld, ref.name, lt, self.target):
                return True, "forget"
            return False, (f"impractical case {case.no}: the forgetting {ld} must contain the "
                           f"target {self.target!r}")
        return False, (f"case {case.no} needs a target at the {lt} level and forgetting data at "
                       f"the {ld} level; {ref.name} is a {ref.level}")

    def _relabel(self) -> None:
        h, case = self.hier, self.case
        lt, ld = case.target_level, case.forget_level
        for node in self._walk():
            ref = node.data
            is_t = ref.level == lt and ref.name == self.target
            is_f = ref.level == ld and ref.name in self.forget
            ok, _ = self.valid(ref)
            if is_t and is_f:
                label = Text.assemble(("◉ ", "bold"), (ref.name, "bold reverse"),
                                      ("  target = forget", "bold green"))
            elif is_t:
                label = Text.assemble(("◎ ", "bold cyan"), (ref.name, "bold cyan"),
                                      ("  target", "cyan"))
            elif is_f:
                label = Text.assemble(("■ ", "bold yellow"), (ref.name, "bold yellow"),
                                      ("  forget", "yellow"))
            elif ok:
                label = Text.assemble(("□ " if ref.level == ld else "○ ", ""), (ref.name, ""))
            else:
                label = Text(f"  {ref.name}", style="grey50")
            node.set_label(label)
            # keep the chosen nodes in view
            if ref.level != "subset" and (
                    (RANK[ref.level] > RANK[lt] and h.contains(ref.level, ref.name, lt, self.target))
                    or (RANK[ref.level] > RANK[ld] and any(
                        h.contains(ref.level, ref.name, ld, f) for f in self.forget))):
                node.expand()

    # ---- picking -----------------------------------------------------------------------
    def pick(self, ref: NodeRef) -> bool:
        """Choose ``ref``; returns whether it was accepted (a refusal posts ``Refused``)."""
        ok, what = self.valid(ref)
        if not ok:
            self.post_message(self.Refused(what))
            return False
        case = self.case
        if what == "target":
            self.target = ref.name
            self.forget = self._default_forget(ref.name)
        else:
            if case.forget_level == case.target_level:
                self.forget = (ref.name,)
            elif ref.name in self.forget:
                if len(self.forget) == 1:
                    self.post_message(self.Refused("at least one forgetting node is needed"))
                    return False
                self.forget = tuple(f for f in self.forget if f != ref.name)
            else:
                order = self.hier.names(case.forget_level)
                self.forget = tuple(sorted(self.forget + (ref.name,), key=order.index))
        self._relabel()
        self.post_message(self.Changed(self.target, self.forget))
        return True

    def _default_forget(self, target: str) -> tuple[str, ...]:
        from engine.spec import RunSpec
        from engine.task import resolve_request

        h, case = self.hier, self.case
        lt, ld = case.target_level, case.forget_level
        if ld == lt:
            return (target,)
        if not case.practical:
            return (h.names(ld)[h.ancestor(lt, h.index(lt, target), ld)],)
        spec = RunSpec(case=self.case.no, target=target, subsets=self.hier.subsets,
                       allow_impractical=True, method=REFERENCE)
        return resolve_request(spec, self.hier)[2]

    def on_tree_node_selected(self, event: Tree.NodeSelected) -> None:
        event.stop()
        if event.node.data is not None:
            self.pick(event.node.data)
