"""Sizes in the configuration (config/sizes.py)."""

from __future__ import annotations

import pytest

from polydesk.config.sizes import memory_size


def test_memory_sizes_are_read_as_people_write_them() -> None:
    ram = 8 << 30
    assert memory_size("50%", ram) == 4 << 30
    assert memory_size("12.5 %", ram) == 1 << 30
    assert [memory_size(t) for t in ("2G", "512M", "512MiB", "64k", "1048576", "0", "")] == [
        2 << 30, 512 << 20, 512 << 20, 64 << 10, 1 << 20, 0, 0]
    for bad in ("lots", "150%", "0%", "-1G", "2 gigabytes"):
        with pytest.raises(ValueError, match="share of RAM"):
            memory_size(bad, ram)
