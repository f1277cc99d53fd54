"""``python -m metalearn.cli`` runs the console script."""

from metalearn.cli import main

main()
