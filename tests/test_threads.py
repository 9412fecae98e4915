"""The command line's thread defaults never override a choice the user made."""

import pytest
import torch

from bayesinv._threads import apply_thread_defaults, thread_default


def test_user_settings_win():
    assert thread_default({"OMP_NUM_THREADS": "4"}, cpu_count=8) is None
    assert thread_default({"MKL_NUM_THREADS": "4", "OMP_WAIT_POLICY": "PASSIVE"}, cpu_count=8) is None
    assert thread_default({"BAYESINV_NUM_THREADS": "3", "OMP_NUM_THREADS": "4"}, cpu_count=8) == 3


def test_defaults_follow_the_wait_policy_and_the_cpu_count():
    assert thread_default({}, cpu_count=8) == 1
    assert thread_default({"OMP_WAIT_POLICY": "PASSIVE"}, cpu_count=8) == 2
    assert thread_default({"OMP_WAIT_POLICY": "passive"}, cpu_count=1) == 1
    assert thread_default({"OMP_WAIT_POLICY": "ACTIVE"}, cpu_count=8) == 1


@pytest.mark.parametrize("bad", ["0", "two", "-1", ""])
def test_bad_thread_count_is_an_error(bad):
    with pytest.raises(ValueError, match="BAYESINV_NUM_THREADS must be a positive integer"):
        thread_default({"BAYESINV_NUM_THREADS": bad})


def test_apply_leaves_torch_alone_when_the_user_chose():
    before = torch.get_num_threads()
    try:
        assert apply_thread_defaults({"OMP_NUM_THREADS": "1"}) is None
        assert torch.get_num_threads() == before
        assert apply_thread_defaults({"BAYESINV_NUM_THREADS": "1"}) == 1
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
