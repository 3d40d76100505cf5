"""The Grid'5000 REST API through python-grid5000, with what its defaults
lack: an explicit request timeout on every call (its default is none: a
dead gateway hangs forever), a bounded number of retries, and one clear
error naming the request. The base URL is the real API unless the config
says otherwise (the tests point it at tests/g5k_api.py on 127.0.0.1).

Credentials: ~/.python-grid5000.yaml (`username`, `password`, optional
`uri`, `verify_ssl`) from outside Grid'5000; none from a frontend or a node
(the API trusts the internal network there)."""

from __future__ import annotations

import getpass
import os
import re
from pathlib import Path

import requests
import yaml

from ... import RxbenchError

DEFAULT_URL = "https://api.grid5000.fr/stable"
CREDENTIALS = Path("~/.python-grid5000.yaml")
# python-grid5000 reads only these keys of its file
_CRED_KEYS = ("uri", "username", "password", "verify_ssl", "sslcert", "sslkey")


class G5kError(RxbenchError):
    pass


class HttpError(G5kError):
    def __init__(self, msg: str, code):
        super().__init__(msg)
        self.code = code


def credentials(path: str | None) -> dict:
    """The credentials file's keys, {} when there is none (inside Grid'5000)."""
    p = Path(path or CREDENTIALS).expanduser()
    if not p.exists():
        return {}
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise G5kError(f"{p}: not readable as YAML ({e}); expected username: and password:")
    if not isinstance(data, dict):
        raise G5kError(f"{p}: expected a mapping with username: and password:")
    unknown = sorted(set(data) - set(_CRED_KEYS))
    if unknown:
        raise G5kError(f"{p}: unknown key(s) {', '.join(unknown)}; "
                       f"allowed: {', '.join(_CRED_KEYS)}")
    return data


class Api:
    """One connection to the API of one site."""

    def __init__(self, pcfg: dict):
        from grid5000 import Grid5000
        from grid5000 import _create_session

        creds = credentials(pcfg.get("credentials"))
        self.url = (pcfg.get("api_url") or creds.get("uri") or DEFAULT_URL).rstrip("/")
        self.site = pcfg["site"]
        self.timeout = (float(pcfg.get("api_connect_timeout_s", 10)),
                        float(pcfg.get("api_timeout_s", 30)))
        self.retries = int(pcfg.get("api_retries", 3))
        self.user = creds.get("username") or os.environ.get("USER") or getpass.getuser()
        kw = {k: creds[k] for k in _CRED_KEYS if k in creds and k != "uri"}
        self.gk = Grid5000(uri=self.url, timeout=self.timeout, **kw)
        # its session retries 5 times on 500/502/504 with no bound on time:
        # ours retries idempotent requests (GET, DELETE) a bounded number of
        # times; a POST is never repeated blindly (a job is looked up by
        # name first, see lease.reserve)
        self.gk.session = _create_session(retries=self.retries, backoff_factor=0.2)
        self._site = None

    def _call(self, what: str, fn, *args, **kw):
        from grid5000.exceptions import Grid5000Error
        try:
            return fn(*args, **kw)
        except Grid5000Error as e:
            raise HttpError(f"Grid'5000 API {what} ({self.url}): HTTP {e.response_code}: "
                            f"{e.error_message}", e.response_code) from None
        except requests.RequestException as e:
            raise G5kError(f"Grid'5000 API {what} ({self.url}): "
                           f"{_reason(e, self.timeout, self.retries)}") from None

    @property
    def site_obj(self):
        if self._site is None:
            self._site = self._call(f"GET site {self.site}", self.gk.sites.__getitem__,
                                    self.site)
        return self._site

    # jobs
    def jobs(self, **query) -> list:
        return self._call("list jobs", self.site_obj.jobs.list, **query)

    def job(self, uid):
        return self._call(f"GET job {uid}", self.site_obj.jobs.get, int(uid))

    def submit(self, spec: dict):
        return self._call(f"submit job {spec.get('name')}", self.site_obj.jobs.create, spec)

    def delete_job(self, uid) -> None:
        self._call(f"DELETE job {uid}", self.site_obj.jobs.delete, int(uid))

    def refresh(self, obj, what: str) -> None:
        self._call(f"GET {what}", obj.refresh)

    # deployments (kadeploy)
    def deploy(self, spec: dict):
        return self._call("submit deployment", self.site_obj.deployments.create, spec)

    def deployment(self, uid):
        return self._call(f"GET deployment {uid}", self.site_obj.deployments.get, str(uid))

    # the reference API
    def node(self, cluster: str, node: str) -> dict:
        c = self._call(f"GET cluster {cluster}", self.site_obj.clusters.__getitem__, cluster)
        n = self._call(f"GET node {node}", c.nodes.__getitem__, node)
        return n.to_dict()

    # KaVLAN: put interfaces (their DNS names) into a VLAN of the job; the
    # answer is KaVLAN's per name: {name: {"status": "success" | "failure"
    # | "unchanged", "message": ...}}
    def vlan_add(self, vlan: str, names: list[str]):
        v = self._call(f"GET VLAN {vlan}", self.site_obj.vlans.__getitem__, vlan)
        return self._call(f"POST nodes into VLAN {vlan}", v.nodes.submit, names)


def _reason(e: requests.RequestException, timeout, retries: int) -> str:
    if isinstance(e, requests.Timeout) or "timed out" in str(e).lower():
        return f"no answer within {timeout[1]:g} s (timed out)"
    if isinstance(e, requests.exceptions.RetryError):
        m = re.search(r"too many (\d+) error", str(e))
        code = f"HTTP {m.group(1)}" if m else "a server error"
        return f"{code} on each of {retries + 1} tries"
    return f"{type(e).__name__}: {e}"
