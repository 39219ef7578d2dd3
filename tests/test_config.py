"""Variants and profiles, defined once, match the thesis."""
import pytest

from helpers import config


def test_variants_match_tables_4_1_and_4_2():
    v = config.VARIANTS
    assert (v["S1"].kernels, v["S1"].reid_steps, v["S1"].filter_lr) == ((5, 7, 7, 5, 3), 1, 5e-4)
    assert (v["S2"].kernels, v["S2"].reid_steps) == ((5, 7, 7, 5, 3), 2)
    assert v["S2c"].privacy == "confusion" and v["S2"].privacy == "thesis"
    assert [v[f"R{i}"].kernels for i in range(1, 7)] == [
        (5, 7, 7, 5, 3), (3, 3, 3, 3, 3), (3, 5, 5, 3, 3), (7, 9, 9, 7, 3), (5, 7, 7, 5, 3), (5, 7, 7, 5, 3)]
    assert [v[f"R{i}"].filter_lr for i in range(1, 7)] == [5e-4, 5e-4, 5e-4, 5e-4, 5e-3, 1e-4]
    assert all(v[f"R{i}"].reid_steps == 1 and v[f"R{i}"].dataset == "tvpr" for i in range(1, 7))
    for name in config.THESIS_VARIANTS:  # the thesis's method everywhere else
        x = v[name]
        assert (x.reids, x.lam, x.reid_lr, x.filter_steps, x.restart_every, x.rounding, x.epochs_factor, x.select) == \
            (("mobilenet",), 5.0, None, 1, 0, "none", 1.0, "co-trained"), name


def test_s5_trains_as_s4_and_only_squares_can_select_by_the_exact_attacker():
    s4, s5 = config.VARIANTS["S4"].as_dict(), config.VARIANTS["S5"].as_dict()
    assert {k for k in s4 if s4[k] != s5[k]} == {"name", "select"} and s5["select"] == "exact"
    with pytest.raises(ValueError, match="squares"):
        config.Variant("X", "tvpr", (5, 7, 7, 5, 3), 1e-3, 1, select="exact")


def test_run_folders_and_attack_settings():
    assert config.run_dir("S2", 0).name == "S2" and config.run_dir("S2", 2).name == "S2_seed2"
    for d in config.DATASETS:
        for name in config.PROFILES:
            a = config.ATTACK[d][name]
            assert 0 < a["eval_every"] <= min(a["detector_steps"], a["reid_steps"]) and a["patience"] >= 1
            s = config.SELECTION[d][name]
            assert 0 < s["eval_every"] <= s["steps"]
    assert {"none", "grey", "blur", "pixelate", "noise"} <= set(config.CLASSIC_TRANSFORMS)


def test_paper_profile_has_the_thesis_sizes():
    p = config.get_profile("paper")
    assert (p.image_size, p.square_size, p.alpha) == (160, 20, 1.0)
    assert (p.batch_size, p.eval_batch_size, p.epochs, p.batches_per_epoch) == (60, 90, 12000, 12)
    assert p.select_after == 6001  # best among the last 6000 of 12000 epochs
    assert (p.val_identities, p.val_images_per_identity, p.detector_val_images) == (20, 6, 720)
    assert p.match_radius == 4.0
    assert config.LEARNING_RATES["squares"] == {"detector": 5e-4, "reid": 1e-3}
    assert config.LEARNING_RATES["tvpr"] == {"detector": 1e-4, "reid": 1e-3}
    assert config.LAMBDA == 5.0


def test_unknown_names_are_rejected_with_the_choices():
    with pytest.raises(KeyError, match="S1"):
        config.get_variant("S9")
    with pytest.raises(ValueError, match="entropy"):
        config.Variant("X", "squares", (5, 7, 7, 5, 3), 1e-3, 1, privacy="mutual")
    with pytest.raises(ValueError, match="cnn"):
        config.Variant("X", "squares", (5, 7, 7, 5, 3), 1e-3, 1, reids=("vit",))


def test_a_longer_variant_keeps_the_thesis_selection_window():
    from dataclasses import replace
    p = config.get_profile("cpu")
    assert config.schedule(p, config.VARIANTS["S1"]) == (20, 11)
    assert config.schedule(p, replace(config.VARIANTS["S1"], epochs_factor=2.5)) == (50, 26)
    assert config.schedule(config.get_profile("paper"), config.VARIANTS["S1"]) == (12000, 6001)
    with pytest.raises(KeyError, match="smoke"):
        config.get_profile("laptop")


def test_every_profile_keeps_detector_sizes_divisible_by_32():
    for p in config.PROFILES.values():
        assert p.image_size % 32 == 0 and p.batch_size >= 5


def test_quick_profile_is_cpu_on_shorter_schedules():
    """`make run`'s profile trains the cpu profile's networks on the cpu profile's data, only for fewer steps."""
    from dataclasses import asdict
    schedules = {"name", "epochs", "select_after", "pretrain_steps"}
    for d in config.DATASETS:
        quick, cpu = asdict(config.get_profile("quick", d)), asdict(config.get_profile("cpu", d))
        assert {k: v for k, v in quick.items() if k not in schedules} == {k: v for k, v in cpu.items() if k not in schedules}
        assert all(quick[k] < cpu[k] for k in schedules - {"name"})
        for table in (config.ATTACK, config.SELECTION):
            assert all(table[d]["quick"][k] <= table[d]["cpu"][k] for k in ("steps", "reid_steps", "detector_steps")
                       if k in table[d]["cpu"])
    assert config.STANDIN["quick"] == config.STANDIN["cpu"]


def test_each_profile_attacks_the_unfiltered_images_first():
    for name in config.PROFILES:
        classic = config.classic_transforms(name)
        assert classic[0] == "none" and set(classic) <= set(config.CLASSIC_TRANSFORMS)
    assert config.classic_transforms("cpu") == list(config.CLASSIC_TRANSFORMS)
