import numpy as np
import pytest

from engine.cases import (CASES, MAIN_CASES, TABLE2_TO_4, Labels, build_partition, cases_for,
                          check_case, default_request, get_case)
from engine.errors import InvalidSpec, UnknownName
from engine.hierarchy import RANK, load_hierarchy

S, C, SC = "subset", "class", "superclass"
# Table 4 transcribed independently: (forgetting data, model output, target concept, comment)
TABLE4 = """
1 S S S All matched
2 S S C Target mismatch
3 S C S Model mismatch
4 S C C Data mismatch
5 S S SC Different
6 S SC S Different
7 S SC SC Different
8 S C SC Different
9 S SC C Different
10 C C C All matched
11 C C SC Target mismatch
12 C SC C Model mismatch
13 C SC SC Data mismatch
14 C S S Impractical
15 C S C Similar to all matched
16 C S SC Different
17 C C S Impractical
18 C SC S Impractical
19 SC SC SC All matched
20 SC C C Impractical
21 SC C SC Similar to all matched
22 SC SC C Impractical
23 SC S S Impractical
24 SC S C Impractical
25 SC S SC Similar to all matched
26 SC C S Impractical
27 SC SC S Impractical
"""
LV = {"S": S, "C": C, "SC": SC}


def rows():
    for line in TABLE4.strip().splitlines():
        no, d, m, t, *comment = line.split()
        yield int(no), LV[d], LV[m], LV[t], " ".join(comment)


@pytest.mark.parametrize("no,d,m,t,comment", list(rows()))
def test_table4_row(no, d, m, t, comment):
    c = get_case(no)
    assert (c.forget_level, c.model_level, c.target_level) == (d, m, t)
    assert c.category == comment.lower().replace(" ", "-")
    assert c.practical == (comment != "Impractical")
    assert c.practical == (RANK[d] <= RANK[t])


def test_counts_and_main_cases():
    assert len(CASES) == 27 and [c.no for c in CASES] == list(range(1, 28))
    assert sorted(c.no for c in CASES if not c.practical) == [14, 17, 18, 20, 22, 23, 24, 26, 27]
    assert MAIN_CASES == (10, 11, 12, 13)
    assert [get_case(n).category for n in MAIN_CASES] == [
        "all-matched", "target-mismatch", "model-mismatch", "data-mismatch"]


def test_two_layer_table2():
    two = cases_for(2)
    assert sorted(c.no for c in two) == [10, 11, 12, 13, 19, 20, 21, 22]
    # Table 2 rows 1..8 with their comments
    t2 = {1: "all-matched", 2: "target-mismatch", 3: "model-mismatch", 4: "data-mismatch",
          5: "impractical", 6: "similar-to-all-matched", 7: "impractical", 8: "all-matched"}
    for row, cat in t2.items():
        c = get_case(TABLE2_TO_4[row])
        assert c.category == cat and c.two_layer_no == row
    assert len(cases_for(3)) == 27


def test_bad_case_numbers():
    for n in (0, 28, -1, "11", True):
        with pytest.raises(UnknownName):
            get_case(n)


def test_check_case_refusals():
    two = load_hierarchy("cifar10")
    with pytest.raises(InvalidSpec, match="--subsets"):
        check_case(get_case(2), two)
    with pytest.raises(InvalidSpec, match="impractical.*--allow-impractical"):
        check_case(get_case(20), two)
    check_case(get_case(20), two, allow_impractical=True)


def labels_for(h, per_class_train, per_class_test, k):
    n = len(h.classes)
    ytr = np.repeat(np.arange(n), per_class_train)
    yte = np.repeat(np.arange(n), per_class_test)
    if not k:
        return Labels(ytr), Labels(yte)
    sub = lambda y: y * k + (np.arange(len(y)) % k)  # noqa: E731
    return Labels(ytr, sub(ytr)), Labels(yte, sub(yte))


def test_cifar10_vehicle_sizes():
    h = load_hierarchy("cifar10")
    tr, te = labels_for(h, 5000, 1000, 0)
    for no in (11, 13):
        p = build_partition(h, get_case(no), "vehicle", ("automobile",), tr, te)
        s = p.sizes()
        assert (s["d_t"], s["d_f"], s["d_uf"], s["d_r"], s["d_un"]) == (10000, 5000, 5000, 40000, 45000)
        assert (s["test_t"], s["test_r"]) == (2000, 8000)
        assert p.hidden_units == ("truck",) and p.n_hidden_units == 1
    p = build_partition(h, get_case(12), "automobile", ("automobile",), tr, te)
    assert p.num_outputs == 5 and p.sizes()["d_uf"] == 0 and p.sizes()["d_r"] == 45000
    # model-level labels: a superclass model labels trucks "vehicle"
    assert p.y_train[p.d_f][0] == h.superclasses.index("vehicle")


def test_cifar100_people_partition():
    h = load_hierarchy("cifar100")
    tr, te = labels_for(h, 500, 100, 0)
    p = build_partition(h, get_case(11), "people", ("boy", "girl"), tr, te)
    assert p.sizes()["d_t"] == 2500 and p.sizes()["d_f"] == 1000 and p.sizes()["d_uf"] == 1500
    assert set(p.hidden_units) == {"baby", "man", "woman"}


def invariants(p, n_train, n_test):
    all_tr = np.arange(n_train)
    assert np.intersect1d(p.d_f, p.d_un).size == 0
    assert np.array_equal(np.union1d(p.d_f, p.d_un), all_tr)
    assert np.intersect1d(p.d_t, p.d_r).size == 0
    assert np.array_equal(np.union1d(p.d_t, p.d_r), all_tr)
    assert np.array_equal(p.d_uf, np.setdiff1d(p.d_t, p.d_f))
    assert np.array_equal(np.union1d(p.test_t, p.test_r), np.arange(n_test))
    assert np.intersect1d(p.test_t, p.test_r).size == 0
    for a in (p.d_t, p.d_f, p.d_un, p.d_uf, p.d_r, p.test_t, p.test_r):
        assert a.dtype == np.int64 and np.all(np.diff(a) > 0)


@pytest.mark.parametrize("case", [c for c in CASES if c.practical], ids=lambda c: f"case{c.no}")
def test_partition_invariants_every_practical_case(case):
    h = load_hierarchy("cifar10", subsets=3)
    tr, te = labels_for(h, 30, 6, 3)
    target, forget, note = default_request(h, case)
    p = build_partition(h, case, target, forget, tr, te)
    invariants(p, len(tr.cls), len(te.cls))
    assert np.isin(p.d_f, p.d_t).all()  # D_f within D_t
    assert np.array_equal(p.d_un, np.setdiff1d(np.arange(len(tr.cls)), p.d_f))
    assert np.array_equal(p.d_r, np.setdiff1d(np.arange(len(tr.cls)), p.d_t))
    if case.forget_level == case.target_level:
        assert len(p.d_uf) == 0 and p.n_hidden_units == 0
    else:
        assert len(p.d_uf) > 0 and p.n_hidden_units > 0
    assert p.num_outputs == h.size(case.model_level)
    assert p.y_train.max() < p.num_outputs
    assert f"case {case.no}" in note


def test_forget_outside_target_and_wrong_level():
    h = load_hierarchy("cifar10", subsets=2)
    tr, te = labels_for(h, 10, 2, 2)
    with pytest.raises(InvalidSpec, match="not inside target.*automobile, truck"):
        build_partition(h, get_case(11), "vehicle", ("cat",), tr, te)
    with pytest.raises(UnknownName, match="unknown class"):
        build_partition(h, get_case(11), "vehicle", ("automobile/0",), tr, te)
    with pytest.raises(UnknownName, match="superclass"):
        build_partition(h, get_case(11), "automobile", ("automobile",), tr, te)


def test_impractical_when_allowed():
    h = load_hierarchy("cifar10")
    tr, te = labels_for(h, 10, 2, 0)
    case = get_case(20)
    target, forget, _ = default_request(h, case)
    assert (target, forget) == ("automobile", ("vehicle",))
    p = build_partition(h, case, target, forget, tr, te, allow_impractical=True)
    assert np.isin(p.d_t, p.d_f).all() and len(p.d_uf) == 0


def test_defaults_for_levels():
    h = load_hierarchy("cifar100", subsets=2)
    assert default_request(h, get_case(11))[:2] == ("people", ("boy", "girl"))
    assert default_request(h, get_case(10))[:2] == ("boy", ("boy",))
    assert default_request(h, get_case(2))[:2] == ("boy", ("boy/0",))
    assert default_request(h, get_case(5))[:2] == ("people", ("boy/0", "girl/0"))
