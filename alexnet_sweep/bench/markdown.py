"""The training bench's Markdown table, and how every bench saves its report (no TensorFlow imported here)."""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alexnet_sweep import names

# title, key in a variant's results, format
COLUMNS = (
    ("variant", "name", "{}"),
    ("policy", "policy", "{}"),
    ("XLA", "jit_compile", "{}"),
    ("train img/s", "train_img_per_s", "{:.1f}"),
    ("speedup", "speedup", "{:.2f}x"),
    ("train img/s 227", "train_img_per_s_227", "{:.1f}"),
    ("speedup 227", "speedup_227", "{:.2f}x"),
    ("pipeline img/s", "pipeline_img_per_s", "{:,.0f}"),
    ("pipeline img/s 227", "pipeline_img_per_s_227", "{:,.0f}"),
    ("bytes/image", "bytes_per_image", "{:,.0f}"),
    ("bytes/image 227", "bytes_per_image_227", "{:,.0f}"),
    ("first step s", "first_step_s", "{:.1f}"),
    ("test accuracy", names.TEST_ACCURACY, "{:.3f}"),
)


def markdown(report: dict[str, Any]) -> str:
    """Renders the training bench's report as a Markdown table with the machine, settings and overheads below it."""
    settings, machine, startup, overhead = report["settings"], report["machine"], report["startup"], report["mlflow"]
    rows = [report["reference"], *report["variants"]]
    columns = [column for column in COLUMNS if any(column[1] in row for row in rows)]
    lines = [
        f"## Training: ours vs the reference notebook ({settings['dataset']}, batch {settings['batch_size']})",
        "",
        "| " + " | ".join(title for title, _, _ in columns) + " |",
        "|" + "---|" * len(columns),
    ]
    for row in rows:
        lines.append("| " + " | ".join(fmt.format(row[key]) if key in row else "" for _, key, fmt in columns) + " |")
    gpus = ", ".join(
        f"{gpu['name']} (compute {gpu['capability'][0]}.{gpu['capability'][1]})" for gpu in machine["gpus"]
    )
    lines += [
        "",
        f"Columns without 227: {settings['input_size']}x{settings['input_size']}, {settings['steps']} steps, then test "
        f"accuracy on `{settings['test_split']}`; with 227: {settings['size227_steps']} steps at 227x227. Steady state "
        f"leaves out the first {settings['warmup_steps']} steps. {settings['optimizer']}, BatchNorm momentum "
        f"{settings['bn_momentum']}, seed {settings['seed']}.",
        f"Machine: {machine['cpu']}, {machine['cpu_cores_usable']} of {machine['cpu_cores']} cores usable, "
        f"bf16 flags: {', '.join(machine['cpu_bf16']) or 'none'}; GPU: {gpus or 'none'}; "
        f"TensorFlow {machine['tensorflow']}, Keras {machine['keras']}, Python {machine['python']}; "
        f"precision=auto -> {machine['precision_auto']}.",
        f"Process start to first train step ({startup['variant']}): {startup['process_start_to_first_step_s']:.1f} s.",
        f"MLflow per epoch (metrics into SQLite): {1000 * overhead['log_s_per_epoch']:.1f} ms = "
        f"{overhead['overhead_pct']:.3f}% of a {overhead['epoch_s']:.1f} s epoch; once per job (run, tags, "
        f"params): {overhead['run_setup_s']:.2f} s; creating a new store: {overhead['store_create_s']:.1f} s.",
    ]
    lines += [f"Not measured: {entry['precision']} ({entry['reason']})." for entry in report["skipped"]]
    lines.append(f"Bench wall time: {report['wall_s']:.0f} s.")
    return "\n".join(lines) + "\n"


def save_report(report: dict[str, Any], table: str, out: Path | None) -> None:
    """Prints a bench's Markdown table and, given `out`, writes the report there (JSON) and the table beside it.

    Args:
        report: The bench's report (JSON-serializable).
        table: Its Markdown rendering.
        out: The JSON file to write, or None to only print; the table goes to the same name with `.md`.
    """
    print(table)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
        out.with_suffix(".md").write_text(table)
        print(f"Wrote {out} and {out.with_suffix('.md')}")


@contextlib.contextmanager
def workdir(keep: Path | None, prefix: str) -> Iterator[Path]:
    """The folder a bench runs in: `keep` (created, and kept) or a temporary one, removed afterwards."""
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    with tempfile.TemporaryDirectory(prefix=prefix) as temporary:
        yield Path(temporary)
