"""The demo's summary reads whole at 80 columns: piped output, CI logs, default terminals."""

from __future__ import annotations

from decimal import Decimal
from io import StringIO

import pytest
from rich.cells import cell_len
from rich.console import Console

from ailedger.demo.report import DemoSummary, ModelCost, TaskSummary, print_summary

LLAMA = "meta-llama/Llama-4-Scout-17B-16E-Instruct"

#: A 20,000-call run as the demo stores it (figures of the kind a real run prints).
SUMMARY = DemoSummary(
    events=20_000,
    stored=20_000,
    dropped=0,
    rejected=0,
    jobs=312,
    seconds=4.2,
    by_model=(
        ModelCost("claude-3-5-sonnet-20241022", "anthropic", 5_210, 9_412_330, 1_206_118,
                  Decimal("46.334127"), 0),
        ModelCost(LLAMA, "together", 4_102, 4_370_000, 700_500, Decimal("0.93612"), 0),
        ModelCost("claude-3-5-haiku-20241022", "anthropic", 3_900, 5_115_000, 1_402_220,
                  Decimal("9.700880"), 0),
        ModelCost("text-embedding-3-small", "openai", 4_800, 720_000, 0, Decimal("0.0144"), 0),
        ModelCost("clip-vit-base-patch32", "local", 1_988, 0, 0, Decimal(0), 1_988),
    ),
    by_task=(
        TaskSummary("product_enrichment_stage2", 1_300, Decimal("21.5"), 0, 104, 20,
                    Decimal("0.84"), 60_000),
        TaskSummary("image_vision_analysis", 2_410, Decimal("19.91"), 0, 96, 60,
                    Decimal("0.81"), 7_912),
        TaskSummary("material_classification", 2_051, Decimal("0.31"), 0, 410, 71,
                    Decimal("0.73"), 1_204),
        TaskSummary("text_embedding", 4_800, Decimal("0.0144"), 0, 48, 48, None, 231),
        TaskSummary("image_embedding", 1_988, Decimal(0), 1_988, 6, 6, None, 58),
    ),
    stream="ailedger:events:demo-1a2b3c4d",
    seed=42,
    embedded=True,
    servers_start_s=1.8,
)  # fmt: skip

#: Each row's figures as the reader should see them, side by side on the row's one line.
MODEL_ROWS = {
    "claude-3-5-sonnet-20241022": ("5,210", "9.4M", "1.2M", "$46.33"),
    LLAMA: ("4,102", "4.4M", "700k", "$0.9361"),
    "claude-3-5-haiku-20241022": ("3,900", "5.1M", "1.4M", "$9.70"),
    "text-embedding-3-small": ("4,800", "720k", "$0.0144"),
    "clip-vit-base-patch32": ("1,988", "—", "1,988"),
}
TASK_ROWS = {
    "product_enrichment_stage2": ("1,300", "$21.50", "0.84", "8.0%", "60,000"),
    "image_vision_analysis": ("2,410", "$19.91", "0.81", "4.0%", "2.5%", "7,912"),
    "material_classification": ("2,051", "$0.3100", "0.73", "20.0%", "3.5%", "1,204"),
    "text_embedding": ("4,800", "$0.0144", "1.0%", "231"),
    "image_embedding": ("1,988", "—", "0.3%", "58"),
}


def rendered(width: int) -> list[str]:
    out = StringIO()
    print_summary(SUMMARY, Console(width=width, file=out, color_system=None))
    return out.getvalue().splitlines()


def row_line(lines: list[str], figures: tuple[str, ...]) -> str | None:
    """The one line holding every figure of a row, each as a whole word."""
    for line in lines:
        words = line.split()
        if all(figure in words for figure in figures):
            return line
    return None


@pytest.mark.parametrize("width", [80, 100, 200])
def test_every_row_and_name_stays_whole(width: int) -> None:
    lines = rendered(width)
    assert max(cell_len(line) for line in lines) <= width
    for name, figures in {**MODEL_ROWS, **TASK_ROWS}.items():
        assert row_line(lines, figures), f"{name}: its row is broken over lines\n" + "\n".join(
            lines
        )
        # The full name is on one line: in the table, or in the legend below it.
        assert any(name in line.split() for line in lines), name


def test_a_name_too_long_for_80_columns_is_marked_and_spelt_out_below() -> None:
    lines = rendered(80)
    (row,) = [line for line in lines if line.split()[:1] and "4,102" in line.split()]
    label = row.split()[0]
    assert label != LLAMA and LLAMA.startswith(label[: label.index("…")])
    mark = label[label.index("…") + 1 :]
    assert f"{mark} {LLAMA}" in [line.strip() for line in lines]
    # Names that fit are not shortened.
    assert any(line.split()[:1] == ["claude-3-5-sonnet-20241022"] for line in lines)


def test_a_wide_console_shows_every_name_in_the_table() -> None:
    lines = rendered(200)
    assert not any("…" in line for line in lines)
    assert any(line.split()[:1] == [LLAMA] for line in lines)


def test_headline_figures_each_on_one_line() -> None:
    lines = rendered(80)
    assert any("20,000 of 20,000 calls stored" in line for line in lines)
    # 46.334127 + 0.93612 + 9.70088 + 0.0144 = 56.985527
    assert any("total $56.99 + 1,988 unpriced calls" in line for line in lines)
    assert any("4,762 events/s" in line for line in lines)  # 20,000 / 4.2 s
