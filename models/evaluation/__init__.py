"""Offline evaluation: protocols (test sets), metrics, plots and the markdown report.

``models.evaluation.run`` runs them; ``anomstream evaluate`` is its command line.
"""
