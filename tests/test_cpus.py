"""Thread choice from allowed cores (affinity, cgroup quota) minus the busy ones."""

import pytest

from bioxbridge_core import cpus


def test_cgroup_v2_and_v1_quotas(tmp_path):
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cpus.cgroup_cpu_quota(tmp_path) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cpus.cgroup_cpu_quota(tmp_path) is None
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("300000")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000")
    assert cpus.cgroup_cpu_quota(v1) == 3.0
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("-1")
    assert cpus.cgroup_cpu_quota(v1) is None


def test_quota_caps_available_cores(tmp_path, monkeypatch):
    (tmp_path / "cpu.max").write_text("100000 100000")
    assert cpus.available_cpus(cgroup_root=tmp_path) == 1


@pytest.fixture
def eight_free_cores(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("BIOXBRIDGE_THREADS", raising=False)
    monkeypatch.setattr(cpus, "available_cpus", lambda **k: 8)
    monkeypatch.setattr(cpus, "host_cpus", lambda: 8)


def test_busy_machine_gets_fewer_threads(eight_free_cores):
    assert cpus.choose_threads(load=0.0) == 8
    assert cpus.choose_threads(load=6.0) == 2
    assert cpus.choose_threads(load=20.0) == 1
    assert cpus.choose_threads(load=6.0, own_load=1.0) == 3
    assert cpus.choose_threads(load=0.0, max_threads=4) == 4


def test_explicit_setting_wins(eight_free_cores, monkeypatch):
    monkeypatch.setenv("BIOXBRIDGE_THREADS", "3")
    assert cpus.choose_threads(load=20.0) == 3
    assert cpus.thread_env(2) == {"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2"}


def test_busy_cores_are_sampled_now_not_from_the_lagging_load_average(eight_free_cores, monkeypatch):
    """A run started right after another must not see the finished run's load (the 1-minute average lags)."""
    import psutil

    monkeypatch.setattr(cpus.os, "getloadavg", lambda: (8.0, 8.0, 8.0))  # a job that just ended
    monkeypatch.setattr(psutil, "cpu_percent", lambda interval=None: 0.0)
    assert cpus.choose_threads() == 8
    monkeypatch.setattr(psutil, "cpu_percent", lambda interval=None: 75.0)  # 6 of 8 cores busy now
    assert cpus.choose_threads() == 2


def test_load_average_is_the_fallback_without_a_sample(eight_free_cores, monkeypatch):
    monkeypatch.setattr(cpus, "cpu_use_now", lambda interval=cpus.SAMPLE_S: None)
    monkeypatch.setattr(cpus.os, "getloadavg", lambda: (6.0, 6.0, 6.0))
    assert cpus.choose_threads() == 2
