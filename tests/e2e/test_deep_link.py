"""A deep link as the very first request after a start gets the app's navigation and gate, not a bare page."""

from tests.support.appserver import run_app
from tests.support.browser import chromium


def test_first_request_to_a_page_address_goes_through_the_navigation(tmp_path):
    with run_app(tmp_path, env={"MARKETPLACE_DEMO_MODE": "true"}) as base, chromium() as browser:
        page = browser.new_page()
        page.goto(f"{base}/operator_pricing")
        page.get_by_text("In force").first.wait_for(timeout=60_000)
        sidebar = page.locator('[data-testid="stSidebar"]')
        sidebar.get_by_text("Operate").first.wait_for(timeout=10_000)
        nav = sidebar.inner_text()
        # grouped page titles (ui.py's st.navigation), not file names of the pages/ folder
        assert "Pricing" in nav and "Demo: act as" in nav
        assert "operator pricing" not in nav and "\nui\n" not in f"\n{nav}\n"
