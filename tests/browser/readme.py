"""Refresh the README's pictures from the browser tests' screenshots: ``make screenshots``.

The browser tests save full-size screenshots under tests/browser/screenshots/ (gitignored); this
keeps small copies of a few of them in tests/browser/readme/ (committed): 960 px wide, at most
1,400 px tall, 128 colours.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
PICTURES = ["job-binary", "job-regression", "compare", "model", "predict", "importance", "dataset"]


def main() -> int:
    source, target = HERE / "screenshots", HERE / "readme"
    target.mkdir(exist_ok=True)
    missing = [name for name in PICTURES if not (source / f"{name}.png").exists()]
    if missing:
        print(f"no screenshot for {missing}: run the browser tests first (make screenshots does)", file=sys.stderr)
        return 1
    for name in PICTURES:
        image = Image.open(source / f"{name}.png").convert("RGB")
        width = 960
        image = image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)
        image = image.crop((0, 0, width, min(image.height, 1400)))
        image.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(target / f"{name}.png", optimize=True)
        print(f"{name}.png: {(target / f'{name}.png').stat().st_size // 1024} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
