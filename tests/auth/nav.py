"""Helpers for the sign-in and role tests: the navigation menu as the browser gets it, "not allowed" checks."""

from __future__ import annotations

from tests.support.apptest import texts

NOT_ALLOWED = "Not allowed."


def menu_titles(menu: list[dict]) -> set[tuple[str, str]]:
    return {(p["section"], p["title"]) for p in menu if not p["hidden"]}


def leaves(block) -> list:
    """Every element (not layout block) in a part of the AppTest tree."""
    out = []
    for child in getattr(block, "children", {}).values():
        if hasattr(child, "children") and not hasattr(child, "value"):  # a layout block: look inside
            out.extend(leaves(child))
        else:
            out.append(child)
    return out


def assert_refused(at, spec) -> None:
    assert not at.exception, f"{spec.path}: {at.exception}"
    errors = [e.value for e in at.error]
    assert any(NOT_ALLOWED in e for e in errors), f"{spec.path} did not say 'Not allowed': {texts(at)}"
    shown = [e for e in leaves(at.main) if e.type not in ("alert", "error")]
    assert not shown, f"{spec.path} showed page content to someone not allowed: {[e.type for e in shown]}"


def open_address(at, url_path: str):
    """Like typing <app>/<url_path> in the address bar: run the page registered at that address.

    (AppTest.switch_page only knows file pages; the sign-in screen registers callables.)
    """
    hashes = [h for h, info in at._registered_pages.items() if info.get("url_pathname") == url_path]
    assert hashes, f"nothing registered at /{url_path}"
    at._page_hash = hashes[0]
    return at.run()
