"""The bench orchestrator's parts; ``bench/bench.py`` (through ``bench/run``) drives them.

bench/ is not an installed package: ``python bench/bench.py`` puts bench/ on ``sys.path``,
so this package imports as ``harness`` and its modules import each other relatively.
"""
