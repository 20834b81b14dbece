"""What every benchmark shares: the Recorder that collects figures and writes them (JSON, a
markdown table per section, PNG plots, the machine it ran on), a timing helper and a progress
printer. Figures are reported, never asserted: a noisy machine makes a threshold a flake, so
every figure that means something is put beside a baseline measured in the same run."""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_START = time.monotonic()


def progress(text: str) -> None:
    """One line on stderr, with the time since the run began (stdout is the table)."""
    print(f"[bench {time.monotonic() - _START:7.1f}s] {text}", file=sys.stderr, flush=True)


def repeat(fn: Callable[[], object], n: int, *, warmup: int = 0) -> list[float]:
    """Wall time of `n` calls of fn, in seconds each (after `warmup` untimed calls)."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(max(1, n)):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    affinity = getattr(os, "sched_getaffinity", None)
    return {
        "cpu": model,
        "cores": os.cpu_count() or 0,
        "usable_cores": len(affinity(0)) if affinity else os.cpu_count() or 0,
        "kernel": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "host": platform.node(),
    }


def _quantile(ordered: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), on sorted samples."""
    if len(ordered) == 1:
        return ordered[0]
    pos = q * (len(ordered) - 1)
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


@dataclass
class Figure:
    section: str
    name: str
    unit: str
    samples: list[float]
    median: float
    p95: float
    min: float
    max: float
    spread: float  # IQR from 4 samples on, else the standard deviation (0 for one sample)
    spread_kind: str
    stdev: float
    n: int
    baseline: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        section: str,
        name: str,
        samples: list[float],
        unit: str,
        baseline: str | None,
        meta: dict[str, Any] | None,
    ) -> Figure:
        values = [float(s) for s in samples]
        if not values:
            raise ValueError(f"{section}/{name}: no samples")
        ordered = sorted(values)
        stdev = statistics.stdev(values) if len(values) > 1 else 0.0
        if len(values) >= 4:
            spread, kind = _quantile(ordered, 0.75) - _quantile(ordered, 0.25), "IQR"
        else:
            spread, kind = stdev, "stdev"
        return cls(
            section=section,
            name=name,
            unit=unit,
            samples=values,
            median=statistics.median(values),
            p95=_quantile(ordered, 0.95),
            min=ordered[0],
            max=ordered[-1],
            spread=spread,
            spread_kind=kind,
            stdev=stdev,
            n=len(values),
            baseline=baseline,
            meta=dict(meta or {}),
        )


@dataclass
class Ratio:
    section: str
    name: str
    numerator: str
    denominator: str
    value: float | None  # None: a figure is missing or the denominator is 0


class Recorder:
    """Figures by section, in the order they were added."""

    def __init__(self) -> None:
        self.figures: dict[str, dict[str, Figure]] = {}
        self.ratios: dict[str, list[tuple[str, str, str]]] = {}
        self.notes: dict[str, list[str]] = {}
        self.machine = machine()

    # -- collecting ---------------------------------------------------------------------------

    def add(
        self,
        section: str,
        name: str,
        samples: list[float],
        unit: str,
        *,
        baseline: str | None = None,
        meta: dict[str, Any] | None = None,
    ) -> Figure:
        """A figure from its samples. `baseline` names another figure (of this section, or
        `section/name`) whose median this one is divided by in the table."""
        figure = Figure.of(section, name, samples, unit, baseline, meta)
        self.figures.setdefault(section, {})[name] = figure
        return figure

    def ratio(self, section: str, name: str, numerator: str, denominator: str) -> None:
        """The ratio of two figures' medians (names in `section`, or `section/name`), worked
        out when written, so either may be added later."""
        self.ratios.setdefault(section, []).append((name, numerator, denominator))
        self.figures.setdefault(section, {})

    def note(self, section: str, text: str) -> None:
        self.notes.setdefault(section, []).append(text)
        self.figures.setdefault(section, {})

    def progress(self, text: str) -> None:
        progress(text)

    # -- reading ------------------------------------------------------------------------------

    def figure(self, section: str, ref: str) -> Figure | None:
        if ref in self.figures.get(section, {}):
            return self.figures[section][ref]
        other, _, name = ref.partition("/")
        return self.figures.get(other, {}).get(name) if name else None

    def sections(self) -> list[str]:
        return list(self.figures)

    def computed_ratios(self, section: str) -> list[Ratio]:
        result = []
        for name, num, den in self.ratios.get(section, []):
            a, b = self.figure(section, num), self.figure(section, den)
            value = a.median / b.median if a is not None and b is not None and b.median else None
            result.append(Ratio(section, name, num, den, value))
        return result

    def versus_baseline(self, figure: Figure) -> float | None:
        if not figure.baseline:
            return None
        base = self.figure(figure.section, figure.baseline)
        return figure.median / base.median if base is not None and base.median else None

    # -- writing ------------------------------------------------------------------------------

    def as_json(self) -> dict[str, Any]:
        sections = {}
        for section in self.sections():
            sections[section] = {
                "figures": [
                    {**asdict(f), "vs_baseline": self.versus_baseline(f)}
                    for f in self.figures[section].values()
                ],
                "ratios": [asdict(r) for r in self.computed_ratios(section)],
                "notes": list(self.notes.get(section, [])),
            }
        return {"machine": self.machine, "sections": sections}

    def markdown(self) -> str:
        m = self.machine
        lines = [
            f"Machine: {m['cpu']}, {m['cores']} cores ({m['usable_cores']} usable), {m['kernel']}, "
            f"Python {m['python']}, {m['date']}",
            "",
        ]
        for section in self.sections():
            lines += [f"### {section}", ""]
            figures = list(self.figures[section].values())
            if figures:
                lines += [
                    "| figure | median | p95 | spread | n | unit | vs baseline |",
                    "| --- | ---: | ---: | ---: | ---: | --- | ---: |",
                ]
                for f in figures:
                    scale, unit = _display_unit(f)
                    rel = self.versus_baseline(f)
                    vs = (
                        f"{_num(rel)}x {f.baseline}"
                        if rel is not None
                        else (f"? {f.baseline}" if f.baseline else "")
                    )
                    lines.append(
                        f"| {f.name} | {_num(f.median / scale)} | {_num(f.p95 / scale)} | "
                        f"{_num(f.spread / scale)} ({f.spread_kind}) | {f.n} | {unit} | {vs} |"
                    )
                lines.append("")
            ratios = self.computed_ratios(section)
            if ratios:
                lines += ["| ratio | value | of medians |", "| --- | ---: | --- |"]
                for r in ratios:
                    value = _num(r.value) if r.value is not None else "n/a"
                    lines.append(f"| {r.name} | {value} | {r.numerator} / {r.denominator} |")
                lines.append("")
            for text in self.notes.get(section, []):
                lines.append(f"- {text}")
            if self.notes.get(section):
                lines.append("")
        return "\n".join(lines).rstrip() + "\n"

    def write(self, out_dir: str | Path) -> list[Path]:
        """results.json, results.md and one PNG per section with figures; the paths written."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        written = [out / "results.json", out / "results.md"]
        written[0].write_text(json.dumps(self.as_json(), indent=2, ensure_ascii=False) + "\n")
        written[1].write_text("# Benchmarks\n\n" + self.markdown())
        written += self._plots(out)
        return written

    def _plots(self, out: Path) -> list[Path]:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        paths = []
        for section in self.sections():
            figures = list(self.figures[section].values())
            if not figures:
                continue
            by_unit: dict[str, list[Figure]] = {}
            for f in figures:
                by_unit.setdefault("time" if f.unit in TIME_UNITS else f.unit, []).append(f)
            series = _series(figures)
            panels = len(by_unit) + len(series)
            height = sum(max(1.6, 0.35 * len(fs) + 0.9) for fs in by_unit.values()) + 3.2 * len(series)
            fig, axes = plt.subplots(panels, 1, figsize=(9, max(2.5, height)), squeeze=False)
            row = 0
            for unit, fs in by_unit.items():
                ax = axes[row][0]
                row += 1
                if unit == "time":
                    unit = _display_unit(max(fs, key=lambda f: f.median * TIME_UNITS[f.unit]))[1]
                scales = [_scale_to(f.unit, unit) for f in fs]
                medians = [f.median / s for f, s in zip(fs, scales, strict=True)]
                low = [max(0.0, (f.median - f.min) / s) for f, s in zip(fs, scales, strict=True)]
                high = [max(0.0, (f.max - f.median) / s) for f, s in zip(fs, scales, strict=True)]
                ax.barh(range(len(fs)), medians, xerr=[low, high], color="#4c72b0", capsize=3)
                ax.set_yticks(range(len(fs)), [f.name for f in fs], fontsize=8)
                ax.invert_yaxis()
                ax.set_xlabel(f"median ({unit}); bars min-max")
                positive = [v for v in medians if v > 0]
                if positive and max(positive) / min(positive) > 100:
                    ax.set_xscale("log")
            for (name, unit), points in series.items():
                ax = axes[row][0]
                row += 1
                xs = [x for x, _ in points]
                ys = [f.median for _, f in points]
                ax.plot(xs, ys, marker="o")
                if min(xs) > 0 and max(xs) / min(xs) >= 10:
                    ax.set_xscale("log")
                if min(ys) > 0 and max(ys) / min(ys) >= 10:
                    ax.set_yscale("log")
                ax.set_xlabel(points[0][1].meta.get("x_label", "size"))
                ax.set_ylabel(f"median ({unit})")
                ax.set_title(name, fontsize=9)
            fig.suptitle(section, fontsize=11)
            fig.tight_layout()
            path = out / f"{_slug(section)}.png"
            fig.savefig(path, dpi=100)
            plt.close(fig)
            paths.append(path)
        return paths


def _series(figures: list[Figure]) -> dict[tuple[str, str], list[tuple[float, Figure]]]:
    """Figures whose meta names a `series` and an `x`: one line plot per series (growth)."""
    found: dict[tuple[str, str], list[tuple[float, Figure]]] = {}
    for f in figures:
        if "series" in f.meta and isinstance(f.meta.get("x"), (int, float)):
            found.setdefault((str(f.meta["series"]), f.unit), []).append((float(f.meta["x"]), f))
    return {k: sorted(v, key=lambda p: p[0]) for k, v in found.items() if len(v) >= 2}


def _display_unit(f: Figure) -> tuple[float, str]:
    """Times shown in the unit that reads best for the median (s, ms or µs)."""
    if f.unit not in TIME_UNITS:
        return 1.0, f.unit
    seconds = abs(f.median) * TIME_UNITS[f.unit]
    unit = "s" if seconds >= 1 else "ms" if seconds >= 1e-3 else "µs"
    return TIME_UNITS[unit] / TIME_UNITS[f.unit], unit


def _scale_to(unit: str, shown: str) -> float:
    if unit in TIME_UNITS and shown in TIME_UNITS:
        return TIME_UNITS[shown] / TIME_UNITS[unit]
    return 1.0


def _num(value: float) -> str:
    if value == int(value) and abs(value) < 1e6:
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 0.01:
        return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"
    return f"{value:.2e}"


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-") or "section"
