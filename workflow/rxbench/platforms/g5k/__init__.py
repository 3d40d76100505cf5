"""The g5k platform: two Grid'5000 nodes reserved with OAR (a `deploy`
job), deployed with kadeploy through the REST API, measured through the
ssh platform, released at the end of the campaign whatever ends it.

  settings.py  platforms.g5k, OAR's job states, reservation dates, walltime
  api.py       the REST API through python-grid5000 (timeouts, retries)
  nodes.py     test ports from the reference API, the inventory, checks
  lease.py     the job's life: reserve, KaVLAN, deploy, release
  testbed.py   the testbed a cell's runner gets

rxbench.lease imports this package as the g5k lease's module: lease_up and
lease_down are here."""

from .api import G5kError
from .lease import lease_down, lease_up, release_by_name
from .testbed import G5kTestbed, release

# What this platform can and cannot show, and where it has run (tables.platform_rows)
CAN_SHOW = ("real NICs on reserved nodes, the test link isolated in a KaVLAN: the "
            "hardware profile's DPDK drivers, AF_XDP zero-copy, multi-queue, zcrx on a "
            "NIC that supports it")
CANNOT_SHOW = "anything without a Grid'5000 account and a reservation"
EXERCISED = ("only against an imitation of the Grid'5000 REST API whose documents have "
             "the real API's shapes (the tests); no real reservation yet")

__all__ = ["G5kError", "G5kTestbed", "lease_down", "lease_up", "release", "release_by_name"]
