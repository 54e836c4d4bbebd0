"""How many actors a cluster can host and what each asks for (:func:`hakuna.ray_runner.actor_plan`): no cluster
shape leaves a request waiting for what another holds, and one that cannot host an actor says so (0)."""

from hakuna.ray_runner import RayConfig, actor_plan


def _node(cpu: float, gpu: float = 0) -> dict:
    return {"CPU": cpu, "GPU": gpu} if gpu else {"CPU": cpu}


def test_cpu_clusters_get_one_actor_per_smallest_node_of_cpus():
    assert actor_plan(RayConfig(), [_node(1), _node(1)]) == (1, 0, 2)  # the 1+1 shape that once hung
    assert actor_plan(RayConfig(), [_node(2), _node(1)]) == (1, 0, 3)
    assert actor_plan(RayConfig(), [_node(16), _node(16)]) == (16, 0, 2)
    assert actor_plan(RayConfig(cpus_per_actor=4), [_node(16), _node(6)]) == (4, 0, 5)


def test_gpu_clusters_get_one_actor_per_gpu_with_its_share_of_cpus():
    assert actor_plan(RayConfig(), [_node(16, 1), _node(2)]) == (16, 1, 1)  # the CPU-only node hosts none
    assert actor_plan(RayConfig(), [_node(32, 4), _node(16, 1)]) == (8, 1, 5)
    assert actor_plan(RayConfig(gpus_per_actor=0), [_node(16, 1)]) == (16, 0, 1)


def test_a_cluster_that_cannot_host_an_actor_gives_zero():
    assert actor_plan(RayConfig(gpus_per_actor=1), [_node(1), _node(1)])[2] == 0
    assert actor_plan(RayConfig(cpus_per_actor=4), [_node(2), _node(1)])[2] == 0
    assert actor_plan(RayConfig(), [])[2] == 0
