"""Hosts: the kernels a cell runs its tools on (base.Host), in a local
network namespace (NetnsHost) or over SSH (SshHost)."""

from .base import ConnectionLost, Host, HostError, OnHost
from .netns import NetnsHost
from .ssh import SshHost
from .tool import TERM_SIGNALS, Tool, ToolError, ToolExited

__all__ = ["ConnectionLost", "Host", "HostError", "OnHost", "NetnsHost", "SshHost",
           "TERM_SIGNALS", "Tool", "ToolError", "ToolExited"]
