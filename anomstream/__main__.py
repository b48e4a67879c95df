"""``python -m anomstream``: the same as the ``anomstream`` console script."""

from anomstream.cli import main

main()
