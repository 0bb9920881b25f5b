"""``python -m logarchive``: the same command as the ``logarchive`` console script."""

from logarchive.cli import main

if __name__ == "__main__":  # pragma: no cover
    main()
