"""The TX-queue rule of AF_PACKET with PACKET_QDISC_BYPASS on veth and the
per-queue check of multi-core cells (unit tests: this machine has 2 CPUs,
so cores=2 cells cannot run here)."""

from rxbench.queues import mapping_problem, per_queue_received, spread_problem, tx_queue, tx_queues


def test_queue_is_the_sending_cpu_modulo_the_queue_count():
    assert tx_queues([0, 1, 2, 3], 2) == [0, 1, 0, 1]
    assert tx_queue(5, 4) == 1 and tx_queue(7, 1) == 0


def test_xps_wins_over_the_cpu_rule():
    assert tx_queue(0, 2, {1: {0}}) == 1
    assert tx_queue(2, 2, {1: {0}}) == 0            # not in any mask: cpu % n
    assert tx_queue(0, 2, {3: {0}}) == 0            # a mask for a queue the device lacks


def test_one_thread_per_queue_on_cpus_that_differ_modulo_n():
    assert mapping_problem([2, 3], 2) is None
    assert mapping_problem([4, 5, 6, 7], 4) is None
    assert "queues [1] would get nothing" in mapping_problem([0, 2], 2)
    assert "one thread per queue" in mapping_problem([0], 2)
    assert mapping_problem([0, 2], 2, {1: {2}}) is None


ETH_A = {"rx_queue_0_xdp_packets": 100, "rx_queue_1_xdp_packets": 50, "rx_queue_0_drops": 3}
ETH_B = {"rx_queue_0_xdp_packets": 1100, "rx_queue_1_xdp_packets": 50, "rx_queue_0_drops": 9}


def test_a_cell_whose_queues_did_not_all_receive_fails_with_the_reason():
    assert per_queue_received(ETH_A, ETH_B) == {0: 1000, 1: 0}
    why = spread_problem(ETH_A, ETH_B, 2)
    assert "queue(s) [1] of 2 got no frames" in why
    assert spread_problem(ETH_A, ETH_B, 1) is None
    ok = dict(ETH_B, rx_queue_1_xdp_packets=60)
    assert spread_problem(ETH_A, ok, 2) is None
    assert "no per-queue receive counters" in spread_problem({}, {"rx_packets": 5}, 2)
