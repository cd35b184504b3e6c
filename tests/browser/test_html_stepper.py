"""The HTML stepper in a real browser (Debian's chromium, headless, through selenium and
chromedriver): Next through every hop, the panel shows each hop's chain and rule, the
highlighted element moves, the keyboard works; a screenshot is kept in tests/artifacts/.
"""

from __future__ import annotations

import shutil

import pytest

from netlab.viz.html import build_page
from netlab.viz.journey import legs
from tests.browser.conftest import ARTIFACTS, script_errors
from tests.unit.viz_cases import lab_trace

pytestmark = pytest.mark.skipif(shutil.which("dot") is None, reason="the page's diagram "
                                "needs Graphviz's dot (apt-get install graphviz)")


@pytest.fixture(scope="module")
def nat_page(tmp_path_factory):
    """Lab 06: a TCP connection to a published port — DNAT on the way in, un-DNAT back."""
    world, traced = lab_trace("06", "node2", "192.168.1.2", proto="tcp", port=8080)
    page = tmp_path_factory.mktemp("html") / "trace.html"
    page.write_text(build_page("lab 06", world, [("published port", traced)]))
    return page, traced


def panel(driver):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, "hop")


def test_next_through_every_hop(browser, nat_page):
    from selenium.webdriver.common.by import By

    page, traced = nat_page
    browser.get(page.as_uri())
    assert browser.find_element(By.ID, "next").tag_name == "button"
    assert browser.find_element(By.ID, "prev").tag_name == "button"
    assert browser.find_elements(By.CSS_SELECTOR, "#diagram svg"), "the diagram is inline SVG"
    steps = legs(traced)[0].steps
    seen_elements = []
    for i, step in enumerate(steps):
        if i:
            browser.find_element(By.ID, "next").click()
        text = panel(browser).text
        assert browser.find_element(By.ID, "position").text == f"Hop {i + 1} of {len(steps)}"
        assert step.hop.event in text
        if step.hop.chain:
            assert f"chain {step.hop.chain}" in text and f"table {step.hop.table}" in text
            assert step.hop.rule in text, f"hop {i + 1}: the rule is not in the panel"
        current = browser.find_elements(By.CSS_SELECTOR, "#diagram g.current")
        highlighted = current[0].get_attribute("id") if current else None
        assert highlighted == browser.find_element(By.TAG_NAME, "body") \
            .get_attribute("data-element")
        seen_elements.append(highlighted)
    assert browser.find_element(By.ID, "next").get_attribute("disabled") is not None
    distinct = [e for n, e in enumerate(seen_elements) if n == 0 or e != seen_elements[n - 1]]
    assert len(distinct) >= 5, f"the highlight hardly moved: {seen_elements}"
    assert all(seen_elements), "every hop of the path is placed on the diagram"
    # a NAT hop marks the rewritten field
    nat = [i for i, s in enumerate(steps) if s.changed]
    assert nat, "the trace of a published port has a DNAT"
    browser.find_elements(By.CSS_SELECTOR, "#hops button")[nat[0]].click()
    changed = browser.find_elements(By.CSS_SELECTOR, "#hop tr.changed")
    assert changed and "rewritten here" in changed[0].text
    assert script_errors(browser) == []
    ARTIFACTS.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "html-stepper.png"))


def test_keyboard_and_reply_selector(browser, nat_page):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    page, traced = nat_page
    browser.get(page.as_uri())
    body = browser.find_element(By.TAG_NAME, "body")
    first = body.get_attribute("data-element")
    body.send_keys(Keys.ARROW_RIGHT)
    body.send_keys(Keys.ARROW_RIGHT)
    assert browser.find_element(By.ID, "position").text.startswith("Hop 3 of")
    body.send_keys(Keys.ARROW_LEFT)
    assert browser.find_element(By.ID, "position").text.startswith("Hop 2 of")
    select = Select(browser.find_element(By.ID, "leg"))
    titles = [o.text for o in select.options]
    assert any(t.startswith("the reply") for t in titles), titles
    select.select_by_index(1)
    reply = legs(traced)[1]
    assert browser.find_element(By.ID, "position").text == f"Hop 1 of {len(reply.steps)}"
    assert reply.steps[0].hop.event in panel(browser).text
    assert body.get_attribute("data-element") != first or len(reply.steps) == 1


def test_a_page_without_a_trace_says_so(browser, tmp_path):
    from selenium.webdriver.common.by import By

    from tests.unit.viz_cases import lab_world

    world, _ = lab_world("03")
    page = tmp_path / "topology.html"
    page.write_text(build_page("lab 03", world, []))
    browser.get(page.as_uri())
    assert "No trace on this page" in panel(browser).text
    assert not browser.find_element(By.ID, "next").is_displayed()
    assert script_errors(browser) == []
