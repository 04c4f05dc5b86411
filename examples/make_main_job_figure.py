"""Draws examples/demo-main-job.png: the README's command 1 (the main job) with the defaults and with the paper's
settings (`--preset Paper`), beside the source and the target, 2x nearest-upscaled, 8 px apart.

    python examples/make_main_job_figure.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
COMMAND = [sys.executable, "-m", "fgat_cli", "transfer", "--source", str(HERE / "source.png"), "--target",
           str(HERE / "target.png"), "--source-prompt", "a photo of a cat", "--target-prompt", "a photo of a cat"]
RUNS = {"defaults": [], "Paper preset": ["--preset", "Paper"]}


def main() -> int:
    tiles = [Image.open(HERE / "source.png").convert("RGB"), Image.open(HERE / "target.png").convert("RGB")]
    with tempfile.TemporaryDirectory() as tmp:
        for name, extra in RUNS.items():
            out = Path(tmp) / f"{name.replace(' ', '_')}.png"
            subprocess.run([*COMMAND, *extra, "--out", str(out)], check=True, cwd=HERE.parent)
            tiles.append(Image.open(out).convert("RGB"))
    w, h = tiles[0].size[0] * 2, tiles[0].size[1] * 2
    gap = 8
    sheet = Image.new("RGB", (w * len(tiles) + gap * (len(tiles) - 1), h), "white")
    for i, tile in enumerate(tiles):
        sheet.paste(tile.resize((w, h), Image.NEAREST), (i * (w + gap), 0))
    sheet.save(HERE / "demo-main-job.png")
    print("wrote examples/demo-main-job.png: source | target | " + " | ".join(RUNS))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
