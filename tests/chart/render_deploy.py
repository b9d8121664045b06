#!/usr/bin/env python3
"""Regenerates deploy/redmux.yaml from the chart and its example values."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import chartlib  # noqa: E402

chartlib.DEPLOY_FILE.write_text(chartlib.deploy_render())
print(f"wrote {chartlib.DEPLOY_FILE.relative_to(chartlib.ROOT)}")
