"""``python -m sampd_plugin.benchmark``: see :mod:`sampd_plugin.benchmark.cli`."""

from sampd_plugin.benchmark.cli import main

if __name__ == "__main__":
    main()
