"""The benchmarks stand on the libraries and services alone, never on the test suite."""

from __future__ import annotations

from pathlib import Path

from servicekit.testing import imported_modules

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_no_benchmark_imports_from_the_tests() -> None:
    sources = sorted(BENCH.rglob("*.py"))
    assert sources, f"no benchmark sources under {BENCH}"
    offending = [
        f"{path.relative_to(BENCH.parent)} imports {module}"
        for path in sources
        for module in sorted(imported_modules(path))
        if module == "tests" or module.startswith("tests.")
    ]
    assert not offending, (
        "bench/ must not import from tests/ (move shared helpers to the libraries, e.g. "
        "servicekit.testing or response_processor.testing):\n" + "\n".join(offending)
    )
