"""Configuration: profiles, schema validation, host checks, messages."""

import pytest

from rxbench.config import ConfigError, resolve


def test_default_profile_is_the_real_campaign():
    cfg = resolve({}, ncpus=2)
    assert cfg["profile"] == "default"
    assert cfg["eth"]["sizes"] == [64, 128, 256, 512, 1024, 1280, 1518]
    assert cfg["reps"] >= 3


def test_smoke_profile_overlays_defaults():
    cfg = resolve({"profile": "smoke"}, ncpus=2)
    assert cfg["reps"] == 1 and cfg["duration_s"] == 1
    assert cfg["eth"]["stacks"] == ["xdp_drop", "af_xdp", "xdpsock", "dpdk", "af_packet"]   # kept from config.yaml
    assert cfg["platforms"]["local"]["mtu"] == 1500


def test_hardware_profile_on_real_hardware():
    cfg = resolve({"profile": "hardware"}, ncpus=16)
    assert cfg["reps"] >= 5 and cfg["duration_s"] >= 10
    assert set(cfg["eth"]["sizes"]) >= {64, 128, 256, 512, 1024, 1280, 1518}


def test_command_line_wins_over_profile():
    cfg = resolve({"profile": "smoke", "reps": 2, "eth": {"sizes": [128]}}, ncpus=2)
    assert cfg["reps"] == 2 and cfg["eth"]["sizes"] == [128]


@pytest.mark.parametrize("override, key, allowed", [
    ({"eth": {"stacks": ["xdp_drop", "nope"]}}, "eth.stacks[1]", "allowed values: xdp_drop, af_xdp, xdpsock, dpdk, af_packet"),
    ({"eth": {"sizes": [32]}}, "eth.sizes[0]", ">= 64"),
    ({"eth": {"sizes": [1600]}}, "eth.sizes[0]", "64..1518"),
    ({"eth": {"cores": [4]}}, "eth.cores[0]", "allowed: 1..1"),
    ({"duration_s": -1}, "duration_s", "> 0"),
    ({"platform": "mars"}, "platform", "allowed values: local"),
    ({"profile": "huge"}, "profile", "allowed values: default, hardware, ndr, seed, smoke"),
    ({"eth": {"variants": {"napi": ["sideways"]}}}, "eth.variants.napi[0]",
     "receiver, sender, dedicated"),
    ({"eth": {"variants": {"napi": ["dedicated"]}}}, "eth.variants.napi", "receiver, sender"),
    ({"reps": 0}, "reps", ">= 1"),
    ({"bogus": 1}, "(top level)", "unknown key(s) bogus"),
])
def test_bad_values_name_the_key_and_the_allowed_values(override, key, allowed):
    with pytest.raises(ConfigError) as e:
        resolve(override, ncpus=2)
    msg = str(e.value)
    assert key in msg and allowed in msg, msg
    assert "\n" not in msg


def test_hardware_profile_refused_on_this_small_host():
    with pytest.raises(ConfigError, match=r"eth.cores\[1\]: 2 receiver cores"):
        resolve({"profile": "hardware"}, ncpus=2)
