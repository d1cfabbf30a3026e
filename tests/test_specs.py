"""Spec validation, JSON round-trip, presets and their parameter counts, and the import boundary."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from dataclasses import replace

import pytest

from cifar_core.model import shapes, specs
from cifar_core.model.specs import ConvBlock, Head, SpecError


@pytest.mark.parametrize("name", list(specs.PRESETS))
def test_presets_round_trip_through_json(name):
    spec = specs.PRESETS[name]
    assert specs.from_json(spec.to_json()) == spec
    assert specs.validate(spec) == []


def test_presets_match_the_seed_study():
    base, bn, deeper = specs.PRESETS["baseline"], specs.PRESETS["batchnorm"], specs.PRESETS["deeper"]
    assert [(b.filters, b.kernel_size, b.pool) for b in base.blocks] == [(32, 5, "max"), (64, 3, "max"),
                                                                         (128, 3, "max")]
    assert base.head == Head("flatten", (128,), 0.0)
    assert all(b.batch_norm for b in bn.blocks) and bn.with_batch_norm(False).blocks == base.blocks
    assert [(b.filters, b.kernel_size) for b in deeper.blocks] == [(32, 7), (64, 5), (128, 3), (256, 3)]
    assert deeper.head == Head("global_avg", (128, 32), 0.0)


def test_parameter_counts():
    counts = {name: shapes.param_count(spec) for name, spec in specs.PRESETS.items()}
    assert counts == {"baseline": 358_346, "deeper": 462_378, "batchnorm": 359_242, "batchnorm-dropout": 359_242,
                      "batchnorm-after-relu": 359_242, "fast": 296_450}


def test_batch_norm_can_follow_the_relu():
    before = [r.name for r in shapes.layers(specs.PRESETS["batchnorm"])][1:4]
    after = [r.name for r in shapes.layers(specs.PRESETS["batchnorm-after-relu"])][1:4]
    assert before == ["block1_conv", "block1_bn", "block1_relu"]
    assert after == ["block1_conv", "block1_relu", "block1_bn"]
    assert specs.PRESETS["batchnorm-after-relu"].with_batch_norm(False).blocks == specs.PRESETS["baseline"].blocks
    problems = specs.validate(replace(specs.PRESETS["baseline"], blocks=(ConvBlock(32, bn_after_relu=True),)))
    assert problems == ["Block 1: batch norm after the ReLU ('after ReLU', bn_after_relu) needs batch norm ('BN', "
                        "batch_norm): turn it on, or turn 'after ReLU' off."]


def test_pooling_can_come_before_batch_norm_and_relu():
    spec = replace(specs.PRESETS["batchnorm"], blocks=(ConvBlock(32, 3, 2, True, "max", pool_first=True),))
    rows = {r["layer"]: r["output shape"] for r in shapes.layer_rows(spec)}
    assert list(rows)[1:8] == ["block1_1_conv", "block1_1_bn", "block1_1_relu", "block1_2_conv", "block1_maxpool",
                               "block1_2_bn", "block1_2_relu"], "after the last conv of the block"
    assert rows["block1_2_bn"] == "16 x 16 x 32"
    assert shapes.param_count(spec) == shapes.param_count(replace(spec, blocks=(replace(spec.blocks[0],
                                                                                        pool_first=False),)))
    problems = specs.validate(replace(spec, blocks=(ConvBlock(32, pool="none", pool_first=True),)))
    assert problems == ["Block 1: pooling first ('pool first', pool_first) needs a pool ('max' or 'avg'): set one, "
                        "or untick it."]


def test_layer_table_shapes():
    rows = shapes.layer_rows(specs.PRESETS["baseline"])
    assert sum(r["params"] for r in rows) == shapes.param_count(specs.PRESETS["baseline"])
    out = {r["layer"]: r["output shape"] for r in rows}
    assert out["block1_conv"] == "32 x 32 x 32" and out["block3_maxpool"] == "4 x 4 x 128"
    assert out["flatten"] == "2048" and out["predictions"] == "10"


def test_too_many_poolings_is_explained():
    spec = specs.depth_family(5)
    deep = replace(spec, blocks=spec.blocks + (ConvBlock(64),))
    problems = specs.validate(deep)
    assert any("Block 6: cannot pool a 1x1 feature map" in p and "at most 5" in p for p in problems)
    assert specs.validate(replace(deep, blocks=deep.blocks[:-1] + (ConvBlock(64, pool="none"),))) == []


def test_every_problem_is_listed_at_once():
    spec = specs.ArchitectureSpec("Bad Name", (ConvBlock(0, kernel_size=-1, pool="mean", dropout=1.5),),
                                  Head("maxpool", (0,), -0.1))
    problems = specs.validate(spec)
    joined = " | ".join(problems)
    for fragment in ("Name 'Bad Name'", "filters must be 1 to 2,048 (got 0)", "kernel size must be 1 to 15 (got -1)",
                     "pool must be one of max, avg, none", "dropout must be in [0, 1)",
                     "Head: pooling must be one of flatten, global_avg", "need 1 to 16,384 units (got 0)",
                     "Head: dropout"):
        assert fragment in joined
    with pytest.raises(SpecError) as err:
        specs.check(spec)
    assert err.value.problems == problems


def test_no_blocks():
    assert specs.validate(specs.ArchitectureSpec("empty", ())) == [
        "Add at least one conv block: a CNN needs a convolution."]


@pytest.mark.parametrize("raw, message", [
    ({"name": "x", "blocks": [{"filters": 8, "kernal_size": 3}]}, "Unknown key(s) in block 1: kernal_size"),
    ({"blocks": []}, "Missing key(s) in spec: name"),
    ({"name": "x", "blocks": [{"filters": "many"}]}, "filters='many' is not a valid int"),
    ({"name": "x", "blocks": [{"filters": 8.5}]}, "filters=8.5 is not a valid int"),
    ({"name": "x", "blocks": [{"filters": 8, "batch_norm": "yes"}]}, "batch_norm='yes' is not a valid bool"),
    ({"name": "x", "blocks": "conv"}, "'blocks' must be a list"),
    ([1, 2], "must be a JSON object"),
])
def test_bad_json_is_named(raw, message):
    with pytest.raises(SpecError, match=None) as err:
        specs.from_json(json.dumps(raw))
    assert message in str(err.value)


def test_not_json():
    with pytest.raises(SpecError, match="Not valid JSON"):
        specs.from_json("{name:")


def test_save_and_resolve_custom_spec(tmp_path):
    spec = replace(specs.PRESETS["baseline"], name="my-net")
    specs.save_spec(spec, tmp_path)
    assert specs.resolve("my-net", tmp_path) == spec
    assert specs.resolve(str(tmp_path / "my-net.json")) == spec
    with pytest.raises(SpecError, match="is a preset"):
        specs.save_spec(specs.PRESETS["baseline"], tmp_path)
    with pytest.raises(SpecError, match="Unknown architecture 'nope': use one of baseline"):
        specs.resolve("nope", tmp_path)


def test_the_budget_family_can_be_picked_by_name_like_a_preset(tmp_path):
    """A sized run trains fast-w0.5 or fast-64-256-256; its network can be trained again by that name."""
    from cifar_core.model import sizing

    assert specs.resolve("fast-w0.5") == sizing.FAMILY["fast-w0.5"]
    picked = sizing.architectures({"my-net": replace(specs.PRESETS["baseline"], name="my-net")})
    assert list(picked)[:len(specs.PRESETS)] == list(specs.PRESETS) and list(picked)[-1] == "my-net"
    assert set(sizing.FAMILY) < set(picked)


def test_depth_family_doubles_channels():
    spec = specs.depth_family(4, batch_norm=True)
    assert [b.filters for b in spec.blocks] == [32, 64, 128, 256] and all(b.batch_norm for b in spec.blocks)
    assert specs.depth_family(3) .blocks == specs.PRESETS["baseline"].blocks


def test_light_modules_never_import_tensorflow():
    code = ("import sys, cifar_core.model.specs, cifar_core.store.runs, cifar_core.data, cifar_core.analysis.scores, "
            "cifar_core.model.config, cifar_core.cli.main; bad = [m for m in sys.modules if m.split('.')[0] in "
            "('tensorflow', 'keras')]; print(bad); sys.exit(bool(bad))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def random_specs(n: int, seed: int = 0) -> list[specs.ArchitectureSpec]:
    """Valid specs of every shape the editor allows: depths, widths, kernels, pooling kinds, BN, dropout, heads."""
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        blocks = tuple(ConvBlock(rng.choice([1, 3, 8, 16, 33]), rng.choice([1, 2, 3, 5, 7]), rng.randint(1, 3),
                                 bn, pool, rng.choice([0.0, 0.25]), bn and rng.random() < 0.5,
                                 pool != "none" and rng.random() < 0.5)
                       for bn, pool in ((rng.random() < 0.5, rng.choice(specs.POOLS))
                                        for _ in range(rng.randint(1, 6))))
        head = Head(rng.choice(specs.HEAD_POOLS), tuple(rng.choice([1, 10, 64]) for _ in range(rng.randint(0, 3))),
                    rng.choice([0.0, 0.5]))
        spec = specs.ArchitectureSpec(f"random{len(out)}", blocks, head)
        if not specs.validate(spec):
            out.append(spec)
    return out


@pytest.mark.parametrize("spec", [*specs.PRESETS.values(), *random_specs(25)], ids=lambda s: s.name)
def test_pure_python_shapes_and_params_equal_keras(spec):
    from cifar_core.engine.models import build_model

    model = build_model(spec)
    keras_rows = [(layer.name, type(layer).__name__, tuple(layer.output.shape[1:]), layer.count_params())
                  for layer in model.layers]
    ours = [(layer.name, layer.type, layer.shape, layer.params) for layer in shapes.layers(spec)]
    assert ours == keras_rows
    assert shapes.param_count(spec) == model.count_params()


def test_width_multiplies_every_blocks_filters_and_keeps_the_head():
    wide = specs.FAST.with_width(0.5)
    assert [b.filters for b in wide.blocks] == [b.filters // 2 for b in specs.FAST.blocks]
    assert wide.head == specs.FAST.head and wide.name == "fast-w0.5" and not specs.validate(wide)
    assert specs.FAST.with_width(1) is specs.FAST
    with pytest.raises(specs.SpecError, match="width multiplier"):
        specs.FAST.with_width(0)
