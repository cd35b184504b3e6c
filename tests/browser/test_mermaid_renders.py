"""The Mermaid netlab writes is drawn by Mermaid itself (mermaid.min.js from the npm
package ``mermaid``, in headless chromium): every bundled lab, with a trace on it, and
the VXLAN case. Skips unless mermaid.min.js is found: NETLAB_MERMAID_JS, or
node_modules/mermaid/dist/ in the repository (``npm install mermaid``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from netlab.viz.journey import legs
from netlab.viz.mermaid import to_mermaid
from netlab.viz.topology import overlay, topology
from tests.unit.viz_cases import lab_trace, lab_world, vxlan_case

REPO = Path(__file__).resolve().parents[2]
MERMAID = Path(os.environ.get("NETLAB_MERMAID_JS",
                              REPO / "node_modules" / "mermaid" / "dist" / "mermaid.min.js"))

pytestmark = pytest.mark.skipif(not MERMAID.is_file(), reason=(
    f"needs mermaid.min.js at {MERMAID} (npm install mermaid, or set NETLAB_MERMAID_JS)"))

PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>
<script src="{src}"></script>
<script>mermaid.initialize({{startOnLoad: false}}); window.ready = true;</script>
</body></html>"""

RENDER = """
const done = arguments[arguments.length - 1];
mermaid.render('d' + Math.floor(Math.random() * 1e9), arguments[0])
  .then(r => done({ok: true, svg: r.svg}))
  .catch(e => done({ok: false, error: String(e && e.message || e)}));
"""


def diagrams():
    from netlab.labs import bundled

    for path in bundled():
        world, _ = lab_world(path.stem)
        yield path.stem, to_mermaid(topology(world))
    world, traced = lab_trace("05", "red", "192.168.1.3")
    topo = topology(world)
    yield "05-with-trace", to_mermaid(topo, overlay(topo, world, legs(traced)))
    world, traced = vxlan_case()
    topo = topology(world)
    yield "vxlan-with-trace", to_mermaid(topo, overlay(topo, world, legs(traced)))


def test_mermaid_draws_every_diagram(browser, tmp_path):
    page = tmp_path / "mermaid.html"
    page.write_text(PAGE.format(src=MERMAID.as_uri()))
    browser.get(page.as_uri())
    assert browser.execute_script("return window.ready === true")
    browser.set_script_timeout(30)
    for name, text in diagrams():
        result = browser.execute_async_script(RENDER, text)
        assert result["ok"], f"{name}: Mermaid refuses it: {result.get('error')}\n{text}"
        assert "<svg" in result["svg"], name
