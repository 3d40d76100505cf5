"""Configuration: profiles, schema validation, host checks, messages."""

import pytest

from rxbench.config import ConfigError, resolve, schema

pytestmark = pytest.mark.unit


def test_default_profile_is_the_real_campaign():
    cfg = resolve({}, ncpus=2)
    assert cfg["profile"] == "default"
    assert cfg["eth"]["sizes"] == [64, 128, 256, 512, 1024, 1518]   # sized: tests/test_estimate.py
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
    ({"profile": "huge"}, "profile", "allowed values: cost, default, hardware, ndr, seed, smoke"),
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


# ---- every key checked before anything runs (generated invalid configurations) ----

import copy  # noqa: E402
import re  # noqa: E402
from pathlib import Path  # noqa: E402

import yaml  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = schema()       # the YAML file with what the stack registry injects
# values only a tool can judge: generated under platform vm, where the tool
# must be there (missing, the key is refused as "cannot be checked")
TOOL_KEYS = ("platforms.vm.cpu", "platforms.vm.image.suite", "platforms.vm.image.kernel_suite",
             "platforms.vm.nix_image")
PER_KEY = 3             # invalid values per key (each resolve() takes ~0.3 s)
WRONG_TYPE = {"string": "text", "integer": 7, "number": 7.5, "boolean": True,
              "array": ["x"], "object": {"x": 1}, "null": None}


def _deref(sub):
    while isinstance(sub, dict) and "$ref" in sub:
        sub = SCHEMA["$defs"][sub["$ref"].rsplit("/", 1)[1]]
    return sub


def _schema_at(path):
    node = SCHEMA
    for part in path:
        node = _deref(node)
        props = node.get("properties") or {}
        if part in props:
            node = props[part]
        elif isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        else:
            return None
    return _deref(node)


def _json_type(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    return {float: "number", str: "string", list: "array", dict: "object"}[type(v)]


def _bad_values(value, sub):
    """Values the schema (or a check) must refuse for a key now `value`."""
    out = []
    types = sub.get("type")
    types = [types] if isinstance(types, str) else list(types or [])
    if "number" in types:
        types.append("integer")
    if sub.get("enum") is not None:
        out.append("no-such-value")
    if types:
        out += [w for t, w in WRONG_TYPE.items() if t not in types][:1]
    for k, delta in (("minimum", -1), ("maximum", 1)):
        if k in sub:
            out.append(sub[k] + delta)
    for k in ("exclusiveMinimum", "exclusiveMaximum"):
        if k in sub:
            out.append(sub[k])
    if types and "integer" in types and "number" not in sub.get("type", []):
        out.append(1.5)
    if "pattern" in sub and not re.search(sub["pattern"], "bad value!"):
        out.append("bad value!")
    if sub.get("minLength"):
        out.append("")
    if "array" in types:
        if sub.get("minItems"):
            out.append([])
        if sub.get("uniqueItems") and value:
            out.append(list(value) + [value[0]])
        items = _deref(sub.get("items") or {})
        sample = value[0] if value else None
        out += [[b] for b in _bad_values(sample, items)[:2] if b is not None or
                "null" not in str(items.get("type"))]
    return out


def _leaves(node, path=()):
    if isinstance(node, dict):
        yield path, node
        for k, v in node.items():
            yield from _leaves(v, path + (k,))
    else:
        yield path, node


def _nest(path, value):
    out = value
    for part in reversed(path):
        out = {part: out}
    return out


def _invalid_configs():
    """(key, overrides) for every key of config.yaml and config/g5k.yaml:
    wrong type, out of range, not allowed, unknown key, empty list, ..."""
    bases = (({}, yaml.safe_load((ROOT / "config" / "config.yaml").read_text())),
             ({**yaml.safe_load((ROOT / "config" / "g5k.yaml").read_text()), "profile": "smoke"},
              yaml.safe_load((ROOT / "config" / "g5k.yaml").read_text())))
    seen = set()
    for base, tree in bases:
        for path, value in _leaves(tree):
            key = ".".join(path)
            sub = _schema_at(path) if path else SCHEMA
            if sub is None or key in ("profile",):
                continue
            if isinstance(value, dict):
                if sub.get("additionalProperties") is False:
                    bad = [{**value, "no_such_key": 1}]
                else:
                    continue
            else:
                bad = _bad_values(value, sub)
            for b in bad[:PER_KEY]:
                over = copy.deepcopy(base)
                if key in TOOL_KEYS:
                    over["platform"] = "vm"
                from rxbench.config import merge
                over = merge(over, _nest(path, b))
                ident = (key, repr(b), repr(base.get("platform")))
                if ident not in seen:
                    seen.add(ident)
                    yield key or "(top level)", over
    # values only a tool or another key can judge
    yield "platforms.vm.cpu", {"platform": "vm", "platforms": {"vm": {"cpu": "NoSuchCPU"}}}
    yield "platforms.vm.image.suite", {"platform": "vm",
                                       "platforms": {"vm": {"image": {"suite": "nosuch"}}}}
    yield "platforms.vm.image.kernel_suite", {
        "platform": "vm", "platforms": {"vm": {"image": {"kernel_suite": "trixie-nosuch"}}}}
    yield "platforms.vm.nix_image", {"platform": "vm",
                                     "platforms": {"vm": {"nix_image": "no/such/dir"}}}
    yield "platforms.vm.eth.generator", {"platforms": {"vm": {"eth": {"generator": "bad"}}}}
    yield "platforms.vm.eth.dpdk", {"platforms": {"vm": {"eth": {"dpdk": {"pmd": ["x"]}}}}}
    yield "ndr.min_load_pps", {"ndr": {"min_load_pps": 4_000_000, "max_load_pps": 3_000_000}}
    yield "ndr.initial_trial_duration_s", {"ndr": {"initial_trial_duration_s": 9,
                                                   "final_trial_duration_s": 5}}
    yield "ndr.final_trial_duration_s", {"ndr": {"final_trial_duration_s": 20,
                                                 "duration_sum_s": 10}}
    yield "ndr.duration_sum_s", {"ndr": {"duration_sum_s": 1000, "search_duration_max_s": 900}}
    yield "platforms.vm.queues", {"platforms": {"vm": {"queues": 2, "mq": False}}}
    yield "platforms.vm.kvm_ready_s", {"platforms": {"vm": {"kvm_ready_s": 600,
                                                            "boot_timeout_s": 600}}}
    yield "eth.sizes", {"platform": "vm", "platforms": {"vm": {"mtu": 1000}}}
    g5k = yaml.safe_load((ROOT / "config" / "g5k.yaml").read_text())
    yield "eth.cores", {**g5k, "profile": "smoke", "eth": {"cores": [1, 2]},
                        "platforms": {"g5k": {**g5k["platforms"]["g5k"], "receiver_cpus": [1]}}}
    yield "platforms.g5k.reservation", {**g5k, "profile": "smoke", "platforms": {"g5k": {
        **g5k["platforms"]["g5k"], "reservation": "2026-12-24T19:00:00"}}}


INVALID = list(_invalid_configs())


def test_the_generator_covers_config_yamls_structure():
    keys = {k for k, _ in INVALID}
    assert len(INVALID) > 250
    for k in ("reps", "eth.af_xdp.batch", "ndr.exceed_ratio", "tcp.variants.load",
              "platforms.vm.image.packages", "platforms.vm.eth.generator",
              "platforms.g5k.walltime", "platforms.g5k.properties.eth_rate"):
        assert k in keys, k


@pytest.mark.parametrize("key,over", INVALID, ids=[f"{k}-{i}" for i, (k, _) in
                                                     enumerate(INVALID)])
def test_each_invalid_configuration_is_refused_naming_the_key(key, over):
    """resolve() is what the Snakefile (and so a dry run) calls first."""
    with pytest.raises(ConfigError) as e:
        resolve(over)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("config key ")
    name = msg[len("config key "):].split(":")[0]
    # the key itself, a list item of it, or (unknown key) the mapping holding it
    assert name == key or name.startswith(key + "[") or name.startswith(key + ".") \
        or key.startswith(name), (key, msg)


def test_a_dry_run_refuses_what_resolve_refuses(tmp_path):
    from conftest import snakemake
    for key, over in [("platforms.vm.eth.generator",
                       {"platforms": {"vm": {"eth": {"generator": "bad"}}}}),
                      ("ndr.min_load_pps", {"ndr": {"min_load_pps": 4_000_000}})]:
        conf = tmp_path / "bad.yaml"
        conf.write_text(yaml.safe_dump(over))
        p = snakemake(tmp_path, "-n", "--cores", "1", "--configfile", str(conf))
        assert p.returncode != 0 and f"config key {key}" in p.stdout + p.stderr, key
