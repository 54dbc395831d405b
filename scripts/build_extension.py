"""Build the installable extension zips (one per platform) with Blender's own extension builder.

The Pillow wheels the animatic service needs are downloaded from PyPI for Blender 4.5
(Python 3.11) and 5.x (Python 3.13) and listed in the staged manifest; the repository's
manifest stays wheel-free so the checkout itself loads as an add-on in tests.
Run through `scripts/build_extension`; zips go to dist/ (or the folder given with --output DIR).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

import bpy

ROOT = Path(__file__).resolve().parent.parent
PILLOW = "Pillow==11.3.0"  # the version scripts/env.sh tests with
PYTHONS = ("3.11", "3.13")
PLATFORMS = {  # Blender platform -> pip platform tags
    "linux-x64": ["manylinux_2_28_x86_64"],
    "macos-arm64": ["macosx_11_0_arm64"],
    "macos-x64": ["macosx_10_13_x86_64"],
    "windows-x64": ["win_amd64"],
}


def blender_scripts() -> Path:
    return Path(bpy.utils.resource_path('LOCAL')) / "scripts"


SHIPPED_SCRIPTS = ("scripts/batch.py", "scripts/flamenco/")  # what a farm runs: the batch and its job type


def tracked_files() -> list[str]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return [line for line in out.splitlines()
            if not line.startswith(("tests/", "scripts/", ".ci/")) or line.startswith(SHIPPED_SCRIPTS)]


def download_wheels(dest: Path) -> list[Path]:
    dest.mkdir(parents=True)
    for python in PYTHONS:
        for tags in PLATFORMS.values():
            platform_args = [arg for tag in tags for arg in ("--platform", tag)]
            subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                            "--python-version", python, *platform_args, "-d", str(dest), PILLOW], check=True)
    return sorted(dest.glob("*.whl"))


def stage(stage_dir: Path) -> None:
    for name in tracked_files():
        target = stage_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    wheels = download_wheels(stage_dir / "wheels")
    manifest = stage_dir / "blender_manifest.toml"
    listed = ",\n".join(f'  "./wheels/{w.name}"' for w in wheels)
    platforms = ", ".join(f'"{p}"' for p in PLATFORMS)
    text = manifest.read_text(encoding="utf-8")
    text = re.sub(r"(license = .*\n)", rf"\1platforms = [{platforms}]\nwheels = [\n{listed},\n]\n", text, count=1)
    manifest.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the installable extension zips, one per platform.")
    parser.add_argument("--output", metavar="DIR", type=Path, default=ROOT / "dist",
                        help="folder the zips are written to (default: dist/ in the checkout)")
    args = parser.parse_args(argv)
    dist = args.output.resolve()
    dist.mkdir(parents=True, exist_ok=True)
    stage_dir = dist / "stage"
    shutil.rmtree(stage_dir, ignore_errors=True)
    stage(stage_dir)
    scripts = blender_scripts()
    builder = scripts / "addons_core" / "bl_pkg" / "cli" / "blender_ext.py"
    tags = scripts / "modules" / "_bpy_internal" / "extensions" / "tags.py"
    subprocess.run([sys.executable, str(builder), "build", "--source-dir", str(stage_dir), "--output-dir", str(dist),
                    "--split-platforms", "--valid-tags", str(tags)], check=True)
    shutil.rmtree(stage_dir)
    for zip_path in sorted(dist.glob("*.zip")):
        print(zip_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
