"""Configuration: config.yaml, overlaid by a profile, overlaid by --config;
validated against the JSON schema (the YAML file with the stack registry's
names and variant sections injected: schema()), then checked
against the host (frame sizes vs MTU, cores vs CPUs)."""

from __future__ import annotations

import copy
import functools
import os
import re
from pathlib import Path

import yaml

from . import ROOT, RxbenchError

SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
CONFIG = ROOT / "config" / "config.yaml"
PROFILES = ROOT / "config" / "profiles"

ETH_FRAME_OVERHEAD = 18  # Ethernet header (14) + FCS (4) on top of the MTU


class ConfigError(RxbenchError):
    pass


def merge(base: dict, over: dict) -> dict:
    """Recursive merge; dicts merge, everything else is replaced."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _load_yaml(path: Path) -> dict:
    with open(path) as f:
        data = yaml.safe_load(f)
    return data or {}


def _key(path) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def explain(error, schema: dict) -> str:
    """One line naming the key, the bad value and what is allowed."""
    key = _key(error.absolute_path)
    kind, want, value = error.validator, error.validator_value, error.instance
    if kind == "enum":
        allowed = ", ".join(str(v) for v in want)
        return f"config key {key}: {value!r} is not allowed; allowed values: {allowed}"
    if kind in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        sub = error.schema
        lo = sub.get("minimum", sub.get("exclusiveMinimum"))
        hi = sub.get("maximum", sub.get("exclusiveMaximum"))
        lo_s = "" if lo is None else (f"> {lo}" if "exclusiveMinimum" in sub else f">= {lo}")
        hi_s = "" if hi is None else (f"< {hi}" if "exclusiveMaximum" in sub else f"<= {hi}")
        rng = " and ".join(s for s in (lo_s, hi_s) if s)
        return f"config key {key}: {value!r} is out of range; allowed: {rng}"
    if kind == "additionalProperties":
        extra = sorted(set(value) - set(error.schema.get("properties", {})))
        allowed = ", ".join(sorted(error.schema.get("properties", {})))
        return f"config key {key}: unknown key(s) {', '.join(extra)}; allowed keys: {allowed}"
    if kind == "type":
        return f"config key {key}: {value!r} is not of type {want}"
    return f"config key {key}: {error.message}"


def schema() -> dict:
    """The configuration's JSON schema: workflow/schemas/config.schema.yaml
    with what the stack registry (stacks/registry.py) declares injected,
    so the YAML never retypes it: the stacks each layer allows, the
    Ethernet generators, and each stack's own variant section
    (<layer>.<stack>)."""
    from .stacks import registry
    out = copy.deepcopy(_schema_doc())
    for layer in registry.LAYERS:
        props = out["properties"][layer]["properties"]
        props["stacks"]["items"] = {"enum": registry.names(layer)}
        for stack in registry.stacks(layer):
            if stack.own_variants():
                props[stack.name] = stack.config_schema()
    gen = out["properties"]["eth"]["properties"]["generator"]
    gen["enum"] = registry.generator_names("eth")
    gen["description"] += " (" + "; ".join(f"{g.name}, {g.description}"
                                            for g in registry.generators("eth")) + ")"
    return out


def _with_defaults(cls):
    """A validator that fills the schema's defaults in as it validates
    (as Snakemake's validate does)."""
    from jsonschema import validators
    props = cls.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, sub):
        for key, subschema in properties.items():
            if isinstance(instance, dict) and "default" in subschema:
                instance.setdefault(key, subschema["default"])
        yield from props(validator, properties, instance, sub)
    return validators.extend(cls, {"properties": set_defaults})


def validate_schema(cfg: dict) -> None:
    """Validate against schema() (filling its defaults); raise a
    ConfigError with a one-line explanation of the first problem."""
    import jsonschema
    sch = schema()
    try:
        _with_defaults(jsonschema.Draft202012Validator)(sch).validate(cfg)
    except jsonschema.ValidationError as e:
        # report the most specific error
        best = jsonschema.exceptions.best_match([e] + list(e.context or []))
        raise ConfigError(explain(best, sch)) from None


def host_cpus() -> int:
    return len(os.sched_getaffinity(0))


def check_host(cfg: dict, ncpus: int | None = None) -> None:
    """Semantic checks the schema cannot express."""
    if cfg["platform"] == "local":
        ncpus = host_cpus() if ncpus is None else ncpus
        local = cfg["platforms"]["local"]
        mtu = local["mtu"]
        max_size = mtu + ETH_FRAME_OVERHEAD
        for i, size in enumerate(cfg["eth"]["sizes"]):
            if size > max_size:
                raise ConfigError(
                    f"config key eth.sizes[{i}]: {size} is over the test link's MTU "
                    f"(platforms.local.mtu={mtu}); allowed: 64..{max_size}")
        gen = local["generator_cpus"]
        for i, c in enumerate(gen):
            if c >= ncpus:
                raise ConfigError(
                    f"config key platforms.local.generator_cpus[{i}]: CPU {c} does not exist; "
                    f"this host has CPUs 0..{ncpus - 1}")
        free = ncpus - len(gen)
        napis = cfg["eth"]["variants"]["napi"]
        for i, cores in enumerate(cfg["eth"]["cores"]):
            if cores > free:
                raise ConfigError(
                    f"config key eth.cores[{i}]: {cores} receiver cores is more than this host "
                    f"has ({ncpus} CPUs, {len(gen)} for the generator); allowed: 1..{max(free, 0)}")
            if "dedicated" in napis and cores + 1 > free:
                raise ConfigError(
                    f"config key eth.variants.napi: 'dedicated' needs a CPU of its own beside "
                    f"{cores} receiver core(s) and the generator's; this host has {ncpus} CPUs; "
                    f"allowed values here: receiver, sender")
        for i, cores in enumerate(cfg["tcp"]["variants"]["cores"]):
            if "dedicated" in cfg["tcp"]["variants"]["napi"] and cores + 1 > free:
                raise ConfigError(
                    f"config key tcp.variants.napi: 'dedicated' needs a CPU of its own beside "
                    f"{cores} server core(s) and the sender's; this host has {ncpus} CPUs; "
                    f"allowed values here: receiver, sender")
            if cores > free:
                raise ConfigError(
                    f"config key tcp.variants.cores[{i}]: {cores} server cores is more than this "
                    f"host has ({ncpus} CPUs, {len(gen)} for the sender); "
                    f"allowed: 1..{max(free, 0)}")
    if cfg["platform"] == "ssh":
        from .platforms.ssh import load_inventory
        inv = cfg.get("inventory")
        if not inv:
            raise ConfigError("config key inventory: platform ssh needs an inventory file "
                              "(--config inventory=FILE)")
        if isinstance(inv, str):
            cfg["inventory"] = str(Path(inv).resolve())
            inv = load_inventory(cfg["inventory"])
        mtu = min(inv["sender"].get("mtu", 1500), inv["receiver"].get("mtu", 1500))
        for i, size in enumerate(cfg["eth"]["sizes"]):
            if size > mtu + ETH_FRAME_OVERHEAD:
                raise ConfigError(
                    f"config key eth.sizes[{i}]: {size} is over the test link's MTU "
                    f"(inventory mtu={mtu}); allowed: 64..{mtu + ETH_FRAME_OVERHEAD}")
    longest = max(cfg["duration_s"], cfg["tcp"]["duration_s"])
    if cfg["warmup_s"] + longest + 5 > cfg["timeout_s"]:
        raise ConfigError(
            f"config key timeout_s: {cfg['timeout_s']} leaves no room for warmup_s + duration_s "
            f"({cfg['warmup_s']} + {longest}) + 5 s of set-up; "
            f"allowed: >= {cfg['warmup_s'] + longest + 5}")


_NUMBER = re.compile(r"^-?(\d+|\d*\.\d+)([eE][-+]?\d+)?$")


def _numbers(value):
    """Snakemake parses nested --config values (`eth={sizes: [64]}`) with
    YAML's base loader, which keeps every scalar a string: read numbers back."""
    if isinstance(value, dict):
        return {k: _numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers(v) for v in value]
    if isinstance(value, str) and _NUMBER.match(value):
        return int(value) if re.fullmatch(r"-?\d+", value) else float(value)
    return value


def resolve(overrides: dict | None = None, base: dict | None = None,
            ncpus: int | None = None) -> dict:
    """The effective configuration: base (config.yaml) <- profile <- overrides."""
    base = _load_yaml(CONFIG) if base is None else base
    overrides = _numbers(overrides or {})
    profile = overrides.get("profile", base.get("profile", "default"))
    allowed = sorted(p.stem for p in PROFILES.glob("*.yaml"))
    if profile not in allowed:
        raise ConfigError(f"config key profile: {profile!r} is not allowed; "
                          f"allowed values: {', '.join(allowed)}")
    cfg = merge(merge(base, _load_yaml(PROFILES / f"{profile}.yaml")), overrides)
    cfg["profile"] = profile
    if cfg.get("platform") == "vm":
        # the vm platform's own Ethernet defaults (pktgen, DPDK's own PMD)
        over = ((cfg.get("platforms") or {}).get("vm") or {}).get("eth") or {}
        cfg["eth"] = merge(cfg.get("eth") or {}, over)
    validate_schema(cfg)
    check_vm_eth(cfg)
    check_bounds(cfg)
    check_host(cfg, ncpus)
    probe_tools(cfg)
    size_g5k(cfg)
    return cfg


# ---- checks beyond the schema (every key before anything runs) ----

@functools.lru_cache(maxsize=None)
@functools.lru_cache(maxsize=1)
def _schema_doc() -> dict:
    """The schema file as written (parsed once per process; callers copy)."""
    return yaml.load(SCHEMA.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def check_vm_eth(cfg: dict) -> None:
    """platforms.vm.eth is merged over eth on platform vm only, but it is
    validated whichever platform is chosen (against eth's schema, the
    error naming platforms.vm.eth)."""
    over = ((cfg.get("platforms") or {}).get("vm") or {}).get("eth")
    if not over or cfg["platform"] == "vm":
        return                              # none, or merged and validated above
    import jsonschema
    sch = schema()                          # with the registry's stacks and variants
    eth = {**sch["properties"]["eth"], "$defs": sch.get("$defs", {})}
    errors = list(jsonschema.Draft202012Validator(eth).iter_errors(merge(cfg["eth"], over)))
    if errors:
        best = jsonschema.exceptions.best_match(errors)
        msg = explain(best, sch)
        raise ConfigError(re.sub(r"^config key (\(top level\)|)", lambda m: (
            "config key platforms.vm.eth" + ("" if m.group(1) else ".")), msg))


def _bound(key_lo: str, lo, key_hi: str, hi, strict: bool = False) -> None:
    if lo > hi or (strict and lo == hi):
        rel = "below" if strict else "at most"
        raise ConfigError(f"config key {key_lo}: {lo!r} must be {rel} {key_hi} ({hi!r})")


def check_bounds(cfg: dict) -> None:
    """Cross-field bounds the schema cannot express."""
    ndr = cfg.get("ndr")
    if ndr:
        _bound("ndr.min_load_pps", ndr["min_load_pps"], "ndr.max_load_pps",
               ndr["max_load_pps"], strict=True)
        _bound("ndr.initial_trial_duration_s", ndr["initial_trial_duration_s"],
               "ndr.final_trial_duration_s", ndr["final_trial_duration_s"])
        _bound("ndr.final_trial_duration_s", ndr["final_trial_duration_s"],
               "ndr.duration_sum_s", ndr["duration_sum_s"])
        _bound("ndr.duration_sum_s", ndr["duration_sum_s"], "ndr.search_duration_max_s",
               ndr["search_duration_max_s"])
    check_only(cfg)
    plat = cfg.get("platforms") or {}
    vm = plat.get("vm")
    if vm and vm["accel"] == "auto":
        # KVM gets kvm_ready_s of boot_timeout_s, a TCG boot again the rest
        _bound("platforms.vm.kvm_ready_s", vm["kvm_ready_s"], "platforms.vm.boot_timeout_s",
               vm["boot_timeout_s"], strict=True)
    if vm and int(vm["queues"]) > 1 and not vm["mq"]:
        raise ConfigError(f"config key platforms.vm.queues: {vm['queues']} queue pairs need "
                          f"platforms.vm.mq: true (without it the guest sees one queue)")
    mtu_key = {"vm": "platforms.vm.mtu", "g5k": "platforms.g5k.mtu"}.get(cfg["platform"])
    if mtu_key and (plat.get(cfg["platform"]) or {}).get("mtu") is not None:
        mtu = plat[cfg["platform"]]["mtu"]
        for i, size in enumerate(cfg["eth"]["sizes"]):
            if size > mtu + ETH_FRAME_OVERHEAD:
                raise ConfigError(
                    f"config key eth.sizes[{i}]: {size} is over the test link's MTU "
                    f"({mtu_key}={mtu}); allowed: 64..{mtu + ETH_FRAME_OVERHEAD}")
    g5k = plat.get("g5k")
    if cfg["platform"] == "g5k" and g5k:
        from .platforms.g5k.settings import reservation_problem
        if g5k.get("reservation") is not None:
            why = reservation_problem(g5k["reservation"])
            if why:
                raise ConfigError(f"config key platforms.g5k.reservation: {why}")
        rcv = g5k.get("receiver_cpus", [1])
        for key, cores in (("eth.cores", cfg["eth"]["cores"]),
                           ("tcp.variants.cores", cfg["tcp"]["variants"]["cores"])):
            for i, c in enumerate(cores):
                if c > len(rcv):
                    raise ConfigError(
                        f"config key {key}[{i}]: {c} receiver cores is more than "
                        f"platforms.g5k.receiver_cpus gives ({rcv}); allowed: 1..{len(rcv)}")


def check_only(cfg: dict) -> None:
    """<layer>.only: each key a variant of the layer (its own or one of its
    stacks'), each value one the campaign lists for that key."""
    from .cells import VARIANTS, variant_values
    for layer in ("eth", "tcp"):
        sect = cfg.get(layer) or {}
        for key, vals in (sect.get("only") or {}).items():
            listed = set()
            for stack in sect.get("stacks") or []:
                listed.update(map(str, variant_values(cfg, layer, stack).get(key, [])))
            listed.update(map(str, (sect.get("variants") or {}).get(key, [])))
            if key not in VARIANTS[layer] and not listed:
                raise ConfigError(f"config key {layer}.only.{key}: {key} is not a variant of "
                                  f"the {layer} layer's stacks")
            for i, v in enumerate(vals):
                if str(v) not in listed:
                    raise ConfigError(f"config key {layer}.only.{key}[{i}]: {v!r} is not among "
                                      f"the values the campaign lists for {key} "
                                      f"({', '.join(sorted(listed)) or 'none'})")


DEBOOTSTRAP_SCRIPTS = Path("/usr/share/debootstrap/scripts")
SUITE_SUFFIXES = ("", "-backports", "-backports-sloppy", "-updates", "-proposed-updates",
                  "-security")


def _run_probe(argv: list[str], key: str, required: bool) -> str | None:
    """A tool's output; None when it is not installed and not required."""
    import shutil
    import subprocess
    if shutil.which(argv[0]) is None:
        if not required:
            return None
        raise ConfigError(f"config key {key}: cannot be checked: {argv[0]} is not installed "
                          f"(the vm platform needs it)")
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=30,
                              stdin=subprocess.DEVNULL).stdout
    except (OSError, subprocess.SubprocessError) as e:
        raise ConfigError(f"config key {key}: cannot be checked: {' '.join(argv)}: {e}") \
            from None


@functools.lru_cache(maxsize=None)
def qemu_cpu_models(required: bool = True) -> frozenset[str] | None:
    """The CPU models `qemu-system-x86_64 -cpu help` lists."""
    out = _run_probe(["qemu-system-x86_64", "-cpu", "help"], "platforms.vm.cpu", required)
    if out is None:
        return None
    return frozenset(line.split()[1] for line in out.splitlines()
                     if line.startswith("x86 ") and len(line.split()) > 1)


@functools.lru_cache(maxsize=None)
def debian_suites(required: bool = True) -> frozenset[str] | None:
    """The suites debootstrap knows (its scripts' names)."""
    if not DEBOOTSTRAP_SCRIPTS.is_dir():
        if not required:
            return None
        raise ConfigError(f"config key platforms.vm.image.suite: cannot be checked: "
                          f"{DEBOOTSTRAP_SCRIPTS} does not exist (install debootstrap; the "
                          f"vm platform's Debian image needs it)")
    return frozenset(p.name for p in DEBOOTSTRAP_SCRIPTS.iterdir())


def probe_tools(cfg: dict) -> None:
    """Values only a tool can judge, probed before anything runs: the QEMU
    CPU model, the Debian suites of the guest image, the flake's guest
    images. On platform vm the tools must be there; on another platform a
    value is judged where its tool is installed (and is unused otherwise)."""
    vm = (cfg.get("platforms") or {}).get("vm")
    if not vm:
        return
    required = cfg["platform"] == "vm"
    if vm["cpu"] != "auto":
        model = vm["cpu"].split(",")[0]
        models = qemu_cpu_models(required)
        if models is not None and model not in models:
            raise ConfigError(f"config key platforms.vm.cpu: {model!r} is not a CPU model of "
                              f"this QEMU (qemu-system-x86_64 -cpu help lists {len(models)}; "
                              f"auto: host under KVM, max under TCG)")
    if vm.get("nix_image"):
        from .platforms.vm import VmError, read_nix_image
        try:
            read_nix_image(cfg)
        except VmError as e:
            raise ConfigError(f"config key {e}") from None
        return                              # the Debian image is not built
    suites = debian_suites(required)
    for key in ("suite", "kernel_suite"):
        name = vm["image"][key]
        if suites is not None and not any(name == base + suf for suf in SUITE_SUFFIXES
                                           for base in suites):
            raise ConfigError(f"config key platforms.vm.image.{key}: {name!r} is not a "
                              f"Debian suite debootstrap knows ({DEBOOTSTRAP_SCRIPTS}), "
                              f"optionally with {', '.join(s for s in SUITE_SUFFIXES if s)}")


def g5k_campaign(cfg: dict) -> tuple[int, int]:
    """(cells, seconds) of the campaign this configuration runs on g5k:
    setup_s + cells x (warm-up + measured interval + cell_overhead_s)."""
    from .cells import expand
    from .platforms.g5k.settings import walltime_s
    cells = expand(cfg)
    seconds = [cfg["warmup_s"] + (cfg["duration_s"] if c.layer == "eth"
                                  else cfg["tcp"]["duration_s"]) for c in cells]
    return len(cells), walltime_s(cfg["platforms"]["g5k"], seconds)


def size_g5k(cfg: dict) -> None:
    """platforms.g5k.walltime: auto becomes the campaign's walltime here,
    where the whole campaign is known (a cell's runner gets one layer's
    configuration, and the g5k lease takes its walltime from it)."""
    g5k = (cfg.get("platforms") or {}).get("g5k")
    if cfg["platform"] != "g5k" or not g5k or g5k.get("walltime", "auto") != "auto":
        return
    from .platforms.g5k.settings import hours_minutes
    g5k["walltime"] = hours_minutes(g5k_campaign(cfg)[1])
