import json

import pytest

from engine.errors import DamagedFile, InvalidSpec, UnknownName
from engine.hierarchy import LEVELS, builtin_names, finer, load_hierarchy

# Table 7 of the paper (superclass -> classes), as printed there.
TABLE7 = {
    "aquatic mammals": "beaver, dolphin, otter, seal, whale",
    "fish": "aquarium fish, flatfish, ray, shark, trout",
    "flowers": "orchids, poppies, roses, sunflowers, tulips",
    "food containers": "bottles, bowls, cans, cups, plates",
    "fruit and vegetables": "apples, mushrooms, oranges, pears, sweet peppers",
    "household electrical devices": "clock, computer keyboard, lamp, telephone, television",
    "household furniture": "bed, chair, couch, table, wardrobe",
    "insects": "bee, beetle, butterfly, caterpillar, cockroach",
    "large carnivores": "bear, leopard, lion, tiger, wolf",
    "large man-made outdoor things": "bridge, castle, house, road, skyscraper",
    "large natural outdoor scenes": "cloud, forest, mountain, plain, sea",
    "large omnivores and herbivores": "camel, cattle, chimpanzee, elephant, kangaroo",
    "medium-sized mammals": "fox, porcupine, possum, raccoon, skunk",
    "non-insect invertebrates": "crab, lobster, snail, spider, worm",
    "people": "baby, boy, girl, man, woman",
    "reptiles": "crocodile, dinosaur, lizard, snake, turtle",
    "small mammals": "hamster, mouse, rabbit, shrew, squirrel",
    "trees": "maple, oak, palm, pine, willow",
    "vehicles 1": "bicycle, bus, motorcycle, pickup truck, train",
    "vehicles 2": "lawn-mower, rocket, streetcar, tank, tractor",
}
# The dataset's meta file spells some names differently from the paper's table.
ALIASES = {"medium_mammals": "medium-sized mammals", "keyboard": "computer keyboard",
           "lawn_mower": "lawn-mower", "maple_tree": "maple", "oak_tree": "oak",
           "palm_tree": "palm", "pine_tree": "pine", "willow_tree": "willow",
           "orchid": "orchids", "poppy": "poppies", "rose": "roses", "sunflower": "sunflowers",
           "tulip": "tulips", "bottle": "bottles", "bowl": "bowls", "can": "cans", "cup": "cups",
           "plate": "plates", "apple": "apples", "mushroom": "mushrooms", "orange": "oranges",
           "pear": "pears", "sweet_pepper": "sweet peppers"}


def paper_name(n: str) -> str:
    return ALIASES.get(n, n.replace("_", " "))


def test_cifar100_equals_table7():
    h = load_hierarchy("cifar100")
    assert len(h.superclasses) == 20 and len(h.classes) == 100
    got = {paper_name(s): sorted(paper_name(c) for c in h.descendants("superclass", s, "class"))
           for s in h.superclasses}
    want = {s: sorted(x.strip() for x in cs.split(",")) for s, cs in TABLE7.items()}
    assert got == want


def test_cifar10_table8_and_defaults():
    h = load_hierarchy("cifar10")
    assert h.classes[1] == "automobile" and h.classes[9] == "truck"
    assert set(h.descendants("superclass", "vehicle", "class")) == {"automobile", "truck"}
    groups = sorted(tuple(sorted(h.descendants("superclass", s, "class"))) for s in h.superclasses)
    assert groups == sorted([("airplane", "bird"), ("automobile", "truck"), ("cat", "dog"),
                             ("deer", "frog"), ("horse", "ship")])
    assert h.default_forget == ("automobile",) and h.default_target == "vehicle"
    assert load_hierarchy("cifar100").default_forget == ("boy", "girl")


def test_subset_layer_names_and_maps():
    h = load_hierarchy("cifar100", subsets=3)
    assert h.layers == 3 and h.levels() == LEVELS
    subs = h.names("subset")
    assert len(subs) == 300 and len(set(subs)) == 300
    assert h.descendants("class", "boy", "subset") == ("boy/0", "boy/1", "boy/2")
    assert h.contains("superclass", "people", "subset", "girl/2")
    assert not h.contains("superclass", "people", "subset", "tank/0")
    i = h.index("subset", "boy/1")
    assert h.names("superclass")[h.ancestor("subset", i, "superclass")] == "people"
    two = load_hierarchy("cifar100")
    assert two.layers == 2
    with pytest.raises(InvalidSpec, match="subsets"):
        two.names("subset")


def test_levels_order():
    assert finer("subset", "class") and finer("class", "superclass") and not finer("class", "class")
    with pytest.raises(UnknownName, match="valid choices: subset, class, superclass"):
        finer("klass", "class")


def test_unknown_names_list_choices():
    h = load_hierarchy("cifar10")
    with pytest.raises(UnknownName, match="automobile"):
        h.index("class", "car")
    with pytest.raises(UnknownName, match="cifar10"):
        load_hierarchy("imagenet")
    for k in (1, -1, 100):
        with pytest.raises(InvalidSpec):
            load_hierarchy("cifar10", subsets=k)


def test_user_hierarchy_file(tmp_path):
    p = tmp_path / "mine.json"
    p.write_text(json.dumps({"name": "mine", "classes": ["a", "b", "c"],
                             "superclasses": {"ab": ["a", "b"], "rest": ["c"]},
                             "default_forget": ["b"], "default_target": "ab"}))
    h = load_hierarchy(str(p), subsets=2)
    assert h.name == "mine" and h.names("subset")[2] == "b/0"
    assert h.class_to_super == (0, 0, 1)


@pytest.mark.parametrize("content,msg", [
    ("{not json", "malformed hierarchy"),
    ("[1, 2]", "top level must be an object"),
    ('{"classes": ["a", "b"]}', "missing key"),
    ('{"classes": ["a", "a"], "superclasses": {"s": ["a"]}}', "repeat"),
    ('{"classes": ["a", "b"], "superclasses": {"s": ["a", "z"]}}', "unknown class 'z'"),
    ('{"classes": ["a", "b"], "superclasses": {"s": ["a"]}}', "without a superclass: b"),
    ('{"classes": ["a", "b"], "superclasses": {"s": ["a", "b"], "t": ["b"]}}', "two superclasses"),
])
def test_malformed_hierarchy_files(tmp_path, content, msg):
    p = tmp_path / "bad.json"
    p.write_text(content)
    with pytest.raises(DamagedFile, match=msg) as e:
        load_hierarchy(str(p))
    assert "\n" not in str(e.value)


def test_builtins_present():
    assert {"cifar10", "cifar100", "synthetic"} <= set(builtin_names())


def test_the_subsets_rule_is_one_function_for_specs_and_hierarchies():
    from engine.errors import InvalidSpec
    from engine.hierarchy import MAX_SUBSETS, check_subsets, load_hierarchy
    from engine.spec import RunSpec

    h = load_hierarchy("synthetic")
    for k in (0, 2, MAX_SUBSETS):
        assert check_subsets(k) == k and h.with_subsets(k).subsets == k
        assert RunSpec(subsets=k).subsets == k
    for k in (-1, 1, MAX_SUBSETS + 1, True, "3"):
        with pytest.raises(InvalidSpec, match=r"subsets must be 0 \(two layers\) or 2\.\.64"):
            check_subsets(k)
        with pytest.raises(InvalidSpec, match="subsets must be"):
            h.with_subsets(k)
    for k in (-1, 1, MAX_SUBSETS + 1):
        with pytest.raises(InvalidSpec, match=r"subsets must be 0 \(two layers\) or 2\.\.64"):
            RunSpec(subsets=k)
