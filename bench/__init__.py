"""Benchmarks: ``python -m bench [NAME ...]`` (or ``make bench``).

Each module ``bench/<name>.py`` exposes ``main(argv: list[str]) -> None`` and prints a Markdown
section with the figure, the baseline measured in the same run, and their ratio, because the
machines are shared and noisy. Results are copied into BENCHMARKS.md.
"""
