"""Take a screenshot of a page of the running app: python tools/screenshot.py URL OUT.png [--wait-text TEXT].

--as picks a demo person; --click TEXT clicks a tab (or failing that, a button) with that text first.
"""

import argparse

from playwright.sync_api import sync_playwright

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

p = argparse.ArgumentParser()
p.add_argument("url")
p.add_argument("out")
p.add_argument("--wait-text", default=None)
p.add_argument("--width", type=int, default=1400)
p.add_argument("--height", type=int, default=1000)
p.add_argument("--as", dest="person", default=None, help="demo mode: pick this person (text of the picker option)")
p.add_argument("--click", default=None, help="click the tab (or button) with this text before the screenshot")
a = p.parse_args()
with sync_playwright() as pw:
    browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
    page = browser.new_page(viewport={"width": a.width, "height": a.height})
    page.goto(a.url)
    if a.person:
        page.get_by_text("Demo: act as").first.wait_for(timeout=30000)
        page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first.click()
        page.get_by_role("option", name=a.person).first.click()
        page.wait_for_timeout(1500)
    if a.click:
        tab = page.get_by_role("tab", name=a.click)
        (tab if tab.count() else page.get_by_role("button", name=a.click)).first.click()
        page.wait_for_timeout(1000)
    if a.wait_text:
        page.get_by_text(a.wait_text).first.wait_for(timeout=30000)
    page.wait_for_timeout(2500)
    page.screenshot(path=a.out, full_page=True)
    browser.close()
print(a.out)
