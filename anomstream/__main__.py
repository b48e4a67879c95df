"""``python -m anomstream``: the same as the ``anomstream`` console script."""

from anomstream.cli import main

if __name__ == "__main__":
    main()
