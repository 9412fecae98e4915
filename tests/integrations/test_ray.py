"""The Ray backend on a real local Ray cluster gives the serial backend's results: bit for bit when the
driver runs torch on one thread like Ray's workers, and to the tolerance stated in
:mod:`bayesinv.studies.backends` (1e-12) when it runs on more."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from bayesinv.studies import parse_study, result_path, run_study
from bayesinv.studies.runner import study_tasks

pytestmark = pytest.mark.integrations


def _spec(folder):
    doc = {"name": "tiny-ray", "seed": 3, "problem": {"operator": "deblur", "image_size": 8, "noise_sigma": 0.1},
           "prior": {"name": "phantom-gaussian"},
           "data": {"family": "prior", "num_calibration": 3, "num_test": 3, "num_ood": 0},
           "samplers": {"exact": {"sampler": "exact", "num_samples": 6},
                        "over": {"sampler": "exact", "num_samples": 6, "options": {"shrink": 0.5}}}}
    return parse_study(doc, folder / "study.toml")


@pytest.fixture(scope="module")
def ray(require):
    ray = require("ray", "ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


def _results(results, spec):
    return {task: load_file(str(result_path(results, *task))) for task in study_tasks(spec)}


def test_ray_cluster_results_equal_serial_results(ray, tmp_path):
    spec = _spec(tmp_path)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)  # what Ray gives a worker with num_cpus=1 (OMP_NUM_THREADS=1)
        serial_one = _results(run_study(spec, tmp_path / "serial1", progress=False), spec)
        torch.set_num_threads(2)
        serial_two = _results(run_study(spec, tmp_path / "serial2", progress=False), spec)
    finally:
        torch.set_num_threads(threads)
    distributed = _results(run_study(spec, tmp_path / "ray", backend="ray", progress=False), spec)
    assert ray.cluster_resources().get("CPU") == 2
    assert len(distributed) == 12
    for task, arrays in distributed.items():
        assert arrays.keys() == serial_one[task].keys()
        for key, value in arrays.items():
            assert torch.equal(value, serial_one[task][key]), (task, key)
            # a driver on 2 threads rounds multi-threaded reductions differently: the documented tolerance
            torch.testing.assert_close(value, serial_two[task][key], rtol=0, atol=1e-12)
