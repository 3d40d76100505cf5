"""The g5k lease (rxbench.lease): an OAR `deploy` job's life through the
REST API. `lease_up` reserves (or finds the job by its name), waits until
it runs, picks the test ports from the reference API (nodes.py), moves
them into the job's KaVLAN when asked, deploys with kadeploy, checks the
deployed nodes, and returns the ssh platform's inventory; `lease_down`
deletes the job from the lease record alone. Everything is recorded before
it is created: the job's name before it is submitted, its id as soon as
known.

Only the base URL and the credentials differ between the real API and the
tests' server (tests/g5k_api.py)."""

from __future__ import annotations

import hashlib
import json
import signal
import time
from pathlib import Path

from ... import ROOT
from ... import lease as _lease
from ...util import atomic_write_json
from .api import Api, G5kError, HttpError
from .nodes import check_environment, choose_links, inventory, short
from .settings import ENDED, RUNNING, local_time, reservation_ts, settings


class JobEnded(G5kError):
    """The job ended before the campaign (walltime, an administrator)."""


class Aborted(G5kError):
    pass


def job_name(p: dict, user: str) -> str:
    """rxbench-<checkout hash>-<user>: the same checkout finds its own job."""
    return p["job_name"] or f"rxbench-{hashlib.sha256(str(ROOT).encode()).hexdigest()[:8]}-{user}"


def oar_properties(p: dict) -> str:
    """OAR's -p: the cluster and the NIC properties (eth_count, eth_rate,
    eth_kavlan_count), e.g. "(cluster='chiclet') and (eth_count>=2)"."""
    terms = [f"cluster='{p['cluster']}'"]
    for key, value in sorted((p.get("properties") or {}).items()):
        value = str(value)
        op = "" if value[:1] in "<>=!" else ">="
        terms.append(f"{key}{op}{value}")
    if p.get("extra_properties"):
        terms.append(str(p["extra_properties"]))
    return " and ".join(f"({t})" for t in terms)


def job_spec(p: dict, name: str) -> dict:
    """The job submission: nodes and walltime, the OAR properties (inside
    the nodes' braces when a KaVLAN is reserved beside them), an advance
    reservation in OAR's own format and the site's local time."""
    nodes = f"nodes={p['nodes']},walltime={p['walltime']}"
    spec = {"name": name, "command": "sleep infinity",
            "types": ["deploy"] + (["exotic"] if p["exotic"] else [])}
    if p["kavlan"]:
        spec["resources"] = "{type='kavlan-local'}/vlan=1+{" + oar_properties(p) + "}/" + nodes
    else:
        spec["resources"], spec["properties"] = nodes, oar_properties(p)
    start = reservation_ts(p)
    if start is not None:
        if start <= time.time():
            raise G5kError(f"config key platforms.g5k.reservation: {p['reservation']} "
                           f"({local_time(p['site'], start)}) is in the past")
        spec["reservation"] = str(p["reservation"])
    if p["queue"]:
        spec["queue"] = p["queue"]
    return spec


class Watch:
    """Stops a long wait when the owner is signalled or every campaign
    process it serves is gone (lease.serve watches only after up())."""

    def __init__(self, record):
        self.record, self.sig = record, None

    def __enter__(self):
        self.old = {s: signal.signal(s, self._on) for s in
                    (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
        return self

    def _on(self, signum, _frame):
        self.sig = signum

    def __exit__(self, *exc):
        for s, h in self.old.items():
            signal.signal(s, h)

    def check(self, what: str) -> None:
        if self.sig is not None:
            raise Aborted(f"{signal.Signals(self.sig).name} during {what}")
        path = getattr(self.record, "path", None)
        watch = (_lease._load(Path(path)) or {}).get("watch") if path else None
        if watch and not any(_lease._running(pid, start) for pid, start in watch):
            raise Aborted(f"the campaign ended during {what}")

    def sleep(self, seconds: float, what: str) -> None:
        end = time.monotonic() + seconds
        while True:
            self.check(what)
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(0.2, left))


def find_job(api: Api, name: str):
    """The user's live job of that name (the newest), or None. The listing
    is asked by user and name only: the API capitalises the states of a
    state filter (tolaunch -> Tolaunch), which OAR's toLaunch does not match."""
    mine = []
    for j in api.jobs(user=api.user, name=name):
        if j.attributes.get("name") not in (None, name) or j.attributes.get("state") in ENDED:
            continue
        j = api.job(j.uid)          # listings are terse: the job itself
        if j.attributes.get("name") == name and j.attributes.get("user") in (None, api.user) \
                and j.attributes.get("state") not in ENDED:
            mine.append(j)
    return max(mine, key=lambda j: int(j.uid)) if mine else None


def reserve(p: dict, api: Api, record, log, watch: Watch):
    """Reuse the job of our name or submit one; return it once running."""
    name = job_name(p, api.user)
    record.put("job_name", name)          # before submitting: down() finds it by name
    job = find_job(api, name)
    if job is not None:
        log(f"g5k: reusing job {job.uid} ({name}), state {job.state}")
    else:
        spec = job_spec(p, name)
        log(f"g5k: submitting job {name} at {api.site}: {json.dumps(spec)}")
        try:
            job = api.submit(spec)
        except G5kError as e:
            # a POST that timed out may have created the job: look it up
            job = find_job(api, name)
            if job is None:
                raise G5kError(f"g5k: could not submit job {name}: {e}") from None
            log(f"g5k: the submission reported an error ({e}) but job {job.uid} exists")
    record.put("job", int(job.uid))
    return wait_running(api, job, p, log, watch)


class Outage:
    """Polls survive an API outage of up to api_outage_s (each request
    already retried); a longer one ends the wait with its error."""

    def __init__(self, api: Api, p: dict, log):
        self.api, self.limit, self.log, self.since = api, float(p["api_outage_s"]), log, None

    def refresh(self, obj, what: str) -> None:
        try:
            self.api.refresh(obj, what)
            self.since = None
        except G5kError as e:
            now = time.monotonic()
            self.since = now if self.since is None else self.since
            if now - self.since > self.limit:
                raise G5kError(f"{e} (the API has not answered for {now - self.since:.0f} s)") \
                    from None
            self.log(f"g5k: {e}; polling on (outage {now - self.since:.0f} s of "
                     f"{self.limit:.0f} s)")


def start_wait_s(p: dict) -> float:
    """How long the job may take to run: start_timeout_s after its
    reservation date (the site's local time)."""
    start = reservation_ts(p)
    return float(p["start_timeout_s"]) + max(0.0, (start or 0.0) - time.time())


def wait_running(api: Api, job, p: dict, log, watch: Watch):
    timeout = start_wait_s(p)
    t0 = time.monotonic()
    last, last_line = None, 0.0
    outage = Outage(api, p, log)
    while True:
        state = job.attributes.get("state")
        if state == RUNNING:
            log(f"g5k: job {job.uid} running on {', '.join(job.assigned_nodes)} "
                f"after {time.monotonic() - t0:.0f} s")
            return job
        if state in ENDED:
            raise JobEnded(f"g5k: job {job.uid} {state} before it ran{why(job.attributes)}")
        now = time.monotonic()
        if state != last or now - last_line >= p["progress_s"]:
            sched = job.attributes.get("scheduled_at")
            when = f", scheduled for {local_time(api.site, sched)}" if sched else ""
            log(f"g5k: job {job.uid} {state}{when} ({now - t0:.0f} s of {timeout:.0f} s)")
            last, last_line = state, now
        if now - t0 > timeout:
            raise G5kError(f"g5k: job {job.uid} did not start within {timeout:.0f} s "
                           f"(state {state}); released (raise platforms.g5k.start_timeout_s "
                           f"or choose a less busy cluster)")
        watch.sleep(p["poll_s"], f"the wait for job {job.uid}")
        outage.refresh(job, f"job {job.uid}")


def why(attrs: dict) -> str:
    """The job's last event, e.g. ': WALLTIME [sarko] ...'."""
    events = attrs.get("events") or []
    if events:
        e = events[-1]
        return f": {e.get('type', '')} {e.get('description', '')}".rstrip()
    return ""


# ---- KaVLAN ----

def job_vlan(job) -> str:
    vlans = (job.attributes.get("resources_by_type") or {}).get("vlans") or []
    if not vlans:
        raise G5kError(f"g5k: job {job.uid} has no VLAN although kavlan is set")
    return str(vlans[0])


def move_into_vlan(api: Api, job, nodes: list[str], ports: list[dict], log) -> str:
    """Put both test ports (their DNS names) into the job's VLAN and read
    KaVLAN's answer per name: anything but success (or already there) stops
    the lease with the node named."""
    vlan = job_vlan(job)
    names = [port["network_address"] or f"{short(n)}-{port['device']}.{api.site}.grid5000.fr"
             for n, port in zip(nodes, ports)]
    log(f"g5k: test ports into KaVLAN {vlan}: {', '.join(names)}")
    answer = api.vlan_add(vlan, names)
    if not isinstance(answer, dict):
        raise G5kError(f"g5k: KaVLAN {vlan} answered {answer!r}, not a status per node; "
                       f"the test ports may not have moved")
    for n, name in zip(nodes, names):
        st = answer.get(name) or {}
        if st.get("status") not in ("success", "unchanged"):
            raise G5kError(f"g5k: KaVLAN could not move {short(n)}'s test port {name} into "
                           f"VLAN {vlan}: {st.get('status', 'no answer for it')}"
                           f"{': ' + st['message'] if st.get('message') else ''}; "
                           f"campaign stopped, job released")
    return vlan


# ---- deployment (kadeploy through the REST API) ----

def public_key(p: dict) -> str:
    key = Path(p["ssh_key"]).expanduser()
    pub = key.with_name(key.name + ".pub")
    if not key.exists() or not pub.exists():
        raise G5kError(f"config key platforms.g5k.ssh_key: {key} and {pub} must both exist "
                       f"(ssh-keygen -t ed25519 -f {key})")
    return pub.read_text().strip()


def deploy(api: Api, nodes: list[str], p: dict, record, log, watch: Watch) -> list[dict]:
    """Deploy the environment; nodes kadeploy reports KO are deployed again,
    up to deploy_retries more times each; every attempt's document is kept
    (record and the lease log). Returns the attempts."""
    key = public_key(p)
    todo, tries, attempts = list(nodes), {n: 0 for n in nodes}, []
    while todo:
        spec = {"nodes": todo, "environment": p["environment"], "key": key}
        log(f"g5k: deploying {p['environment']} on {', '.join(short(n) for n in todo)} "
            f"(attempt {1 + max(tries[n] for n in todo)})")
        d = api.deploy(spec)
        record.add("deployments", str(d.uid))
        d = _wait_deployment(api, d, p, log, watch)
        result = d.attributes.get("result") or {}
        doc = {"uid": str(d.uid), "nodes": todo, "status": d.status, "result": result}
        attempts.append(doc)
        log(f"g5k: deployment {d.uid}: {json.dumps(doc)}")
        failed = [n for n in todo if (result.get(n) or {}).get("state") != "OK"]
        for n in failed:
            tries[n] += 1
        over = [n for n in failed if tries[n] > p["deploy_retries"]]
        if over:
            raise G5kError(
                f"g5k: kadeploy failed on {', '.join(short(n) for n in over)} "
                f"{p['deploy_retries'] + 1} times (last: deployment {d.uid}, "
                f"{_node_reason(result, over[0])}); campaign stopped, job released")
        todo = failed
    record.put("deployed", {"environment": p["environment"], "nodes": nodes,
                            "attempts": len(attempts)})
    return attempts


def _node_reason(result: dict, node: str) -> str:
    r = result.get(node) or {}
    return ", ".join(f"{k} {r[k]}" for k in ("state", "macro", "micro", "last_cmd_stderr")
                     if r.get(k)) or "no per-node result"


def _wait_deployment(api: Api, d, p: dict, log, watch: Watch):
    t0 = time.monotonic()
    last = 0.0
    outage = Outage(api, p, log)
    while d.attributes.get("status") == "processing":
        if time.monotonic() - t0 > p["deploy_timeout_s"]:
            raise G5kError(f"g5k: deployment {d.uid} still processing after "
                           f"{p['deploy_timeout_s']} s")
        if time.monotonic() - last >= p["progress_s"]:
            log(f"g5k: deployment {d.uid} processing ({time.monotonic() - t0:.0f} s)")
            last = time.monotonic()
        watch.sleep(p["poll_s"], f"deployment {d.uid}")
        outage.refresh(d, f"deployment {d.uid}")
    return d


# ---- the lease (rxbench.lease) ----

def api_cfg(p: dict) -> dict:
    return {k: p[k] for k in ("site", "api_url", "credentials", "api_timeout_s",
                              "api_connect_timeout_s", "api_retries") if k in p}


def lease_up(cfg: dict, record, log) -> dict:
    p = settings(cfg)
    record.put("api_cfg", api_cfg(p))       # lease_down reaches the API from the record
    api = Api(api_cfg(p))
    with Watch(record) as watch:
        job = reserve(p, api, record, log, watch)
        nodes = list(job.assigned_nodes)
        if len(nodes) < 2:
            raise G5kError(f"g5k: job {job.uid} has {len(nodes)} node(s), the platform needs 2")
        record.put("nodes", nodes)
        docs, ports = choose_links(api, nodes[:2], p, log)
        vlan = move_into_vlan(api, job, nodes[:2], ports, log) if p["kavlan"] else None
        deploy(api, nodes[:2], p, record, log, watch)
        known = str(_lease.STATE_DIR / f"g5k-known_hosts-{job.uid}")
        record.add("files", known)
        inv = inventory(p, api, job, docs, ports, known)
        inv["provenance"]["kavlan"] = vlan
        watch.check("the environment check")
        if p["check_environment"]:
            inv["provenance"]["deployed"] = check_environment(
                inv, p, log, drivers={"sender": ports[0]["driver"],
                                      "receiver": ports[1]["driver"]})
    return inv


def lease_down(record, log) -> None:
    """Delete the job (by its id, or by its name when the owner died before
    it knew the id); works from the record alone."""
    cfg = record.get("api_cfg")
    if not cfg:
        return
    api = Api(cfg)
    uids = [record.get("job")] if record.get("job") else []
    if not uids and record.get("job_name"):
        j = find_job(api, record.get("job_name"))
        uids = [j.uid] if j is not None else []
    for f in record.get("files", []):
        Path(f).unlink(missing_ok=True)
    for uid in uids:
        try:
            release_job(api, uid, log)
        except G5kError:
            # the lease record goes with its owner: keep what `rxbench g5k
            # release` (and `rxbench clean`) need to try again
            atomic_write_json(unreleased_path(uid), {"api_cfg": cfg, "job": uid})
            log(f"g5k: job {uid} NOT released; recorded in {unreleased_path(uid)} "
                f"for `rxbench g5k release`")
            raise


def unreleased_path(uid) -> Path:
    return _lease.STATE_DIR / f"g5k-unreleased-{uid}.json"


def release_unreleased(log) -> list[str]:
    """Jobs whose deletion failed earlier (API down): try again."""
    done = []
    for f in sorted(_lease.STATE_DIR.glob("g5k-unreleased-*.json")):
        data = _lease._load(f)
        if data:
            release_job(Api(data["api_cfg"]), data["job"], log)
            done.append(f"job {data['job']} at {data['api_cfg']['site']}")
        f.unlink(missing_ok=True)
    return done


def release_job(api: Api, uid, log, tries: int = 5) -> None:
    for i in range(tries):
        try:
            api.delete_job(uid)
            log(f"g5k: job {uid} deleted (released)")
            return
        except HttpError as e:
            if e.code in (404, 410):
                log(f"g5k: job {uid} already gone")
                return
            err = e
        except G5kError as e:
            err = e
        try:
            if api.job(uid).attributes.get("state") in ENDED:
                log(f"g5k: job {uid} already ended")
                return
        except G5kError:
            pass
        log(f"g5k: deleting job {uid} failed ({err}); try {i + 1} of {tries}")
        time.sleep(min(0.5 * 2 ** i, 10))
    raise G5kError(f"g5k: could not delete job {uid} after {tries} tries: {err}; "
                   f"delete it by hand: rxbench g5k release, or oardel {uid} on the frontend")


def release_by_name(cfg: dict, log) -> list[str]:
    """Every live job of this checkout's name (`rxbench g5k release --by-name`)."""
    p = settings(cfg)
    api = Api(api_cfg(p))
    name = job_name(p, api.user)
    done, asked, end = [], set(), time.monotonic() + 120
    while True:
        j = find_job(api, name)
        if j is None:
            return done
        if j.uid in asked:          # deleted, not ended yet (OAR kills it)
            if time.monotonic() > end:
                raise G5kError(f"g5k: job {j.uid} ({name}) is still {j.state} 120 s after "
                               f"its deletion; oardel {j.uid} on the frontend")
            time.sleep(1)
            continue
        release_job(api, j.uid, log)
        asked.add(j.uid)
        done.append(f"job {j.uid} ({name}) at {api.site}")
