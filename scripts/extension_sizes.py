"""What each extension zip weighs and holds: zip size, unpacked size (what Blender writes into the user's
extensions folder: every wheel unpacked, plus the extension's own files) and each bundled wheel's share.

Usage::

    python scripts/extension_sizes.py dist/posefit-0.1.0-*.zip            # one summary row per zip (Markdown)
    python scripts/extension_sizes.py --wheels dist/posefit-0.1.0-linux_x64.zip   # and a row per wheel

Sizes are in MiB (2**20 bytes), read from the zips themselves (nothing is unpacked to disk).
"""

from __future__ import annotations

import argparse
import io
import pathlib
import sys
import tomllib
import zipfile

MIB = 2**20


def zip_report(path: pathlib.Path) -> dict:
    """Sizes of one extension zip: ``zip``, ``unpacked`` (bytes), ``platforms``, and per wheel
    ``(name, bytes in the zip, bytes unpacked)``, largest first."""
    wheels = []
    own = 0
    with zipfile.ZipFile(path) as archive:
        manifest = tomllib.loads(archive.read("blender_manifest.toml").decode("utf-8"))
        for info in archive.infolist():
            if info.filename.startswith("wheels/") and info.filename.endswith(".whl"):
                with zipfile.ZipFile(io.BytesIO(archive.read(info))) as wheel:
                    unpacked = sum(i.file_size for i in wheel.infolist())
                wheels.append((info.filename.removeprefix("wheels/"), info.compress_size, unpacked))
            else:
                own += info.file_size
    wheels.sort(key=lambda w: -w[1])
    return {
        "name": path.name,
        "platforms": manifest.get("platforms", []),
        "zip": path.stat().st_size,
        "unpacked": own + sum(w[2] for w in wheels),
        "wheels": wheels,
    }


def markdown(reports: list[dict], per_wheel: bool) -> str:
    """The reports as Markdown tables."""
    lines = ["| zip | platform | wheels | zip MiB | unpacked MiB | largest wheels (MiB in the zip) |",
             "|---|---|---:|---:|---:|---|"]  # fmt: skip
    for r in reports:
        largest = ", ".join(f"{w[0].split('-')[0]} {w[1] / MIB:.0f}" for w in r["wheels"][:5])
        lines.append(f"| {r['name']} | {', '.join(r['platforms'])} | {len(r['wheels'])} | {r['zip'] / MIB:.1f} "
                     f"| {r['unpacked'] / MIB:.1f} | {largest} |")  # fmt: skip
    if per_wheel:
        for r in reports:
            lines += ["", f"{r['name']}:", "", "| wheel | zip MiB | unpacked MiB |", "|---|---:|---:|"]
            lines += [f"| {w[0]} | {w[1] / MIB:.2f} | {w[2] / MIB:.2f} |" for w in r["wheels"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("zips", nargs="+", type=pathlib.Path)
    parser.add_argument("--wheels", action="store_true", help="also a table per zip with every wheel")
    args = parser.parse_args(argv)
    missing = [str(z) for z in args.zips if not z.is_file()]
    if missing:
        print(f"error: no such zip: {', '.join(missing)}", file=sys.stderr)
        return 1
    print(markdown([zip_report(z) for z in args.zips], args.wheels))
    return 0


if __name__ == "__main__":
    sys.exit(main())
