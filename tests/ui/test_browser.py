"""The web UI in a real headless chromium (Debian's, driven by Selenium through Debian's
chromium-driver) against the session's real dev server: log in, create a key, encrypt and
decrypt, rotate with a confirmation, set min_decryption_version, edit a policy with an HCL
error, what a limited token sees, a 403 on lookup-self, log out, a narrow screen. One
browser for the module; every wait is for an element, never a sleep."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.helpers import ServerProcess
from tests.ui.browser import CHROMEDRIVER, CHROMIUM, chromium

TEXT = "héllo, transit ✓"


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("chromium and chromium-driver are missing: run `make deps`")
    with chromium() as d:
        yield d


@pytest.fixture(scope="module")
def ui_mount(server: ServerProcess) -> Iterator[str]:
    path = f"ui-{uuid.uuid4().hex[:8]}"
    assert server.request("POST", f"sys/mounts/{path}", json={"type": "transit"}).ok
    yield path
    server.request("DELETE", f"sys/mounts/{path}")


@pytest.fixture(scope="module")
def api_key(server: ServerProcess, ui_mount: str) -> str:
    """A key made through the API, for the tests that do not create one in the UI."""
    assert server.request("POST", f"{ui_mount}/keys/made-by-api", json={}).ok
    return "made-by-api"


class UI:
    def __init__(self, d: Any, server: ServerProcess) -> None:
        self.d = d
        self.server = server

    def wait(self, cond: Any, timeout: float = 10) -> Any:
        try:
            return WebDriverWait(self.d, timeout, poll_frequency=0.05).until(cond)
        except TimeoutException:
            logs = [e["message"] for e in self.d.get_log("browser")]
            raise AssertionError(f"timed out; url {self.d.current_url}; console {logs}") from None

    def css(self, sel: str) -> Any:
        return self.wait(EC.visibility_of_element_located((By.CSS_SELECTOR, sel)))

    def click(self, sel: str) -> None:
        self.wait(EC.element_to_be_clickable((By.CSS_SELECTOR, sel))).click()

    def text_in(self, sel: str, text: str) -> None:
        self.wait(EC.text_to_be_present_in_element((By.CSS_SELECTOR, sel), text))

    def absent(self, sel: str) -> bool:
        return not self.d.find_elements(By.CSS_SELECTOR, sel)

    def go(self, route: str, ready: str) -> None:
        """Navigate the single-page app (a hash change) and wait for `ready` on the page."""
        if not self.d.current_url.startswith(self.server.addr + "/ui/"):
            self.d.get(self.server.addr + "/ui/")
        self.d.execute_script("location.hash = arguments[0]", f"#/{route}")
        self.css(ready)

    def stored_token(self) -> str | None:
        token: str | None = self.d.execute_script("return sessionStorage.getItem('transit.token')")
        return token

    def login(self, token: str) -> None:
        if self.stored_token() == token:
            return
        self.d.get(self.server.addr + "/ui/#/login")
        box = self.css("#token")
        box.clear()
        box.send_keys(token)
        self.click("#login")
        self.css("#logout")

    def logout(self) -> None:
        if self.stored_token():
            self.click("#logout")
            self.css("#login-form")


@pytest.fixture
def ui(driver: Any, server: ServerProcess) -> UI:
    driver.set_window_size(1280, 900)
    return UI(driver, server)


def _value(ui: UI, sel: str) -> str:
    value: str = ui.css(sel).get_attribute("value")
    return value


def test_login_shows_the_cluster_and_keeps_the_token_out_of_the_url(ui: UI) -> None:
    ui.logout()
    ui.d.get(ui.server.addr + "/ui/")
    ui.css("#token").send_keys(ui.server.token)
    ui.click("#login")
    ui.css("table.nodes tr[data-node]")
    ui.text_in("[data-field=sealed]", "unsealed")
    assert ui.stored_token() == ui.server.token
    assert ui.server.token not in ui.d.current_url
    assert "active" in ui.css("table.nodes").text


def test_create_key_then_encrypt_and_decrypt(ui: UI, ui_mount: str, server: ServerProcess) -> None:
    ui.login(server.token)
    ui.go(f"keys/{ui_mount}", "#create-key")
    ui.css("#new-key-name").send_keys("from-ui")
    Select(ui.css("#new-key-type")).select_by_value("chacha20-poly1305")
    ui.click("#create-key button[type=submit]")
    ui.css("table.versions tr[data-version='1']")
    ui.text_in("[data-field=type]", "chacha20-poly1305")
    assert server.request("GET", f"{ui_mount}/keys/from-ui").json()["data"]["type"] == \
        "chacha20-poly1305"

    ui.click("#key-actions")
    ui.css("#action-encrypt #in-plaintext").send_keys(TEXT)
    ui.click("#run")
    ciphertext = _value(ui, "textarea[data-output=ciphertext]")
    assert ciphertext.startswith("vault:v1:")

    ui.click(".tabs a[data-action=decrypt]")
    ui.css("#action-decrypt #in-ciphertext").send_keys(ciphertext)
    ui.click("#run")
    assert _value(ui, "textarea[data-output=plaintext]") == TEXT
    # the API agrees: the UI sent base64 of the UTF-8 text
    r = server.request("POST", f"{ui_mount}/decrypt/from-ui", json={"ciphertext": ciphertext})
    assert base64.b64decode(r.json()["data"]["plaintext"]).decode() == TEXT


def test_sign_verify_hmac_hash_random(ui: UI, ui_mount: str, server: ServerProcess) -> None:
    """The other key actions, each checked against the API."""
    assert server.request("POST", f"{ui_mount}/keys/signer", json={"type": "ed25519"}).ok
    ui.login(server.token)
    ui.go(f"actions/{ui_mount}/signer", ".tabs")
    tabs = [t.get_attribute("data-action") for t in ui.d.find_elements(By.CSS_SELECTOR, ".tabs a")]
    assert tabs == ["hmac", "sign", "verify", "hash", "random"]  # no encryption with ed25519
    ui.click(".tabs a[data-action=sign]")
    ui.css("#action-sign #in-input").send_keys(TEXT)
    ui.click("#run")
    signature = _value(ui, "textarea[data-output=signature]")
    assert signature.startswith("vault:v1:")
    ui.click(".tabs a[data-action=verify]")
    ui.css("#action-verify #in-input").send_keys(TEXT)
    ui.css("#in-signature").send_keys(signature)
    ui.click("#run")
    ui.text_in("[data-output=valid]", "Valid")
    ui.click(".tabs a[data-action=hmac]")
    ui.css("#action-hmac #in-input").send_keys(TEXT)
    ui.click("#run")
    assert _value(ui, "textarea[data-output=hmac]").startswith("vault:v1:")
    ui.click(".tabs a[data-action=hash]")
    ui.css("#action-hash #in-input").send_keys("abc")
    ui.click("#run")
    assert _value(ui, "textarea[data-output=sum]") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")  # sha2-256("abc")
    ui.click(".tabs a[data-action=random]")
    ui.css("#action-random #in-bytes")
    ui.click("#run")
    assert len(base64.b64decode(_value(ui, "textarea[data-output=random]"))) == 32


def test_bad_input_shows_the_api_error(ui: UI, ui_mount: str, api_key: str,
                                       server: ServerProcess) -> None:
    ui.login(server.token)
    ui.go(f"actions/{ui_mount}/{api_key}/decrypt", "#action-decrypt")
    ui.css("#in-ciphertext").send_keys("vault:v1:not-base64!")
    ui.click("#run")
    expected = server.request("POST", f"{ui_mount}/decrypt/{api_key}",
                              json={"ciphertext": "vault:v1:not-base64!"}).json()["errors"][0]
    ui.text_in("#result .error", expected)
    ui.text_in("#result .error", "Error 400")


def test_rotate_asks_first_and_shows_version_2(ui: UI, ui_mount: str, api_key: str,
                                               server: ServerProcess) -> None:
    ui.login(server.token)
    ui.go(f"keys/{ui_mount}/{api_key}", "#rotate")
    ui.click("#rotate")
    ui.click("dialog[open] [data-confirm=cancel]")
    assert ui.absent("dialog[open]")
    assert server.request("GET", f"{ui_mount}/keys/{api_key}").json()["data"][
        "latest_version"] == 1
    ui.click("#rotate")
    ui.text_in("dialog[open]", "version 2")
    ui.click("dialog[open] [data-confirm=ok]")
    ui.css("table.versions tr[data-version='2']")
    ui.text_in("[data-field=latest_version]", "2")
    ui.text_in(".notice", "latest version is now 2")
    assert server.request("GET", f"{ui_mount}/keys/{api_key}").json()["data"][
        "latest_version"] == 2


def test_set_min_decryption_version(ui: UI, ui_mount: str, api_key: str,
                                    server: ServerProcess) -> None:
    ui.login(server.token)
    if server.request("GET", f"{ui_mount}/keys/{api_key}").json()["data"]["latest_version"] < 2:
        server.request("POST", f"{ui_mount}/keys/{api_key}/rotate")
    ui.go(f"keys/{ui_mount}/{api_key}", "#min_decryption_version")
    box = ui.css("#min_decryption_version")
    box.clear()
    box.send_keys("2")
    ui.click("#save-config")
    ui.text_in("[data-field=min_decryption_version]", "2")
    assert server.request("GET", f"{ui_mount}/keys/{api_key}").json()["data"][
        "min_decryption_version"] == 2
    # a value the API refuses: its message, inline
    box = ui.css("#min_encryption_version")
    box.clear()
    box.send_keys("9")
    ui.click("#save-config")
    ui.css("#key-config .error")
    assert server.request("GET", f"{ui_mount}/keys/{api_key}").json()["data"][
        "min_encryption_version"] == 0


def test_policy_hcl_error_inline_then_saved(ui: UI, server: ServerProcess) -> None:
    ui.login(server.token)
    name = f"ui-{uuid.uuid4().hex[:6]}"
    ui.go("policies", "#new-policy")
    ui.css("#new-policy-name").send_keys(name)
    ui.click("#new-policy button[type=submit]")
    editor = ui.css("#policy-hcl")
    editor.send_keys('path "secret/*" {\n  capabilities = ["read"\n}\n')
    ui.click("#save-policy")
    expected = server.request("PUT", f"sys/policies/acl/{name}", json={
        "policy": 'path "secret/*" {\n  capabilities = ["read"\n}\n'}).json()["errors"][0]
    assert expected.startswith("failed to parse policy")
    ui.text_in("#policy-error", expected)
    editor.clear()
    editor.send_keys('path "secret/*" {\n  capabilities = ["read"]\n}\n')
    ui.click("#save-policy")
    ui.text_in(".notice", "Saved.")
    assert ui.absent("#policy-error .error")
    policy = server.request("GET", f"sys/policies/acl/{name}").json()["data"]["policy"]
    assert 'capabilities = ["read"]' in policy
    server.request("DELETE", f"sys/policies/acl/{name}")


def test_a_limited_token_sees_only_what_it_may_do(ui: UI, ui_mount: str, api_key: str,
                                                  server: ServerProcess) -> None:
    name = f"ui-limited-{uuid.uuid4().hex[:6]}"
    server.request("PUT", f"sys/policies/acl/{name}", json={"policy": (
        f'path "{ui_mount}/keys/{api_key}" {{ capabilities = ["read"] }}\n'
        f'path "{ui_mount}/encrypt/{api_key}" {{ capabilities = ["update"] }}\n')})
    token = server.request("POST", "auth/token/create", json={"policies": [name]}).json()[
        "auth"]["client_token"]
    ui.logout()
    ui.login(token)
    for page in ("secrets", "policies", "audit", "metrics", "cluster"):
        assert not ui.d.find_element(By.CSS_SELECTOR, f"#nav a[data-page={page}]").is_displayed()
    ui.go(f"keys/{ui_mount}/{api_key}", "#key-actions")
    assert ui.absent("#rotate") and ui.absent("#key-config") and ui.absent("#key-trim")
    ui.click("#key-actions")
    ui.css("#action-encrypt")
    tabs = [t.get_attribute("data-action") for t in ui.d.find_elements(By.CSS_SELECTOR, ".tabs a")]
    assert tabs == ["encrypt"]
    # the token is revoked: the next API call's 403 makes the UI ask lookup-self, whose 403
    # signs the user out (the token is forgotten)
    assert server.request("POST", "auth/token/revoke", json={"token": token}).status_code == 204
    ui.css("#action-encrypt #in-plaintext").send_keys("x")  # the page is already shown
    ui.click("#run")
    ui.css("#login-form")
    assert ui.stored_token() is None
    server.request("DELETE", f"sys/policies/acl/{name}")


def test_a_revoked_token_is_forgotten_on_the_next_page_load(ui: UI, server: ServerProcess) -> None:
    token = server.request("POST", "auth/token/create", json={"policies": ["default"]}).json()[
        "auth"]["client_token"]
    ui.logout()
    ui.login(token)
    assert server.request("POST", "auth/token/revoke", json={"token": token}).status_code == 204
    ui.d.refresh()  # lookup-self on every load: 403
    ui.css("#login-form")
    assert ui.stored_token() is None


def test_logout_forgets_the_token(ui: UI, server: ServerProcess) -> None:
    ui.login(server.token)
    ui.go("audit", "section[data-page=audit] h1")
    ui.click("#logout")
    ui.css("#login-form")
    assert ui.stored_token() is None
    assert not ui.d.find_element(By.ID, "nav").is_displayed()
    ui.d.execute_script("location.hash = '#/keys'")
    ui.css("#login-form")


def test_wrong_token_shows_the_api_error(ui: UI) -> None:
    ui.logout()
    ui.d.get(ui.server.addr + "/ui/#/login")
    ui.css("#token").send_keys("not-a-token")
    ui.click("#login")
    ui.text_in("#login-form .error", "permission denied")
    assert ui.stored_token() is None


def test_narrow_screen_menu_and_no_sideways_scroll(ui: UI, ui_mount: str, api_key: str,
                                                   server: ServerProcess) -> None:
    ui.d.set_window_size(390, 844)
    ui.login(server.token)
    ui.go(f"keys/{ui_mount}/{api_key}", "table.versions")
    assert not ui.d.find_element(By.ID, "nav").is_displayed()
    ui.click("#menu-toggle")
    ui.css("#nav a[data-page=metrics]")
    width = ui.d.execute_script("return [document.documentElement.scrollWidth, innerWidth]")
    assert width[0] <= width[1], width
    ui.click("#nav a[data-page=metrics]")
    ui.css(".chart.rate svg")


def test_no_content_security_policy_violation(driver: Any) -> None:
    """Runs last: nothing the pages did was refused by the CSP (no inline script or style)."""
    messages = [e["message"] for e in driver.get_log("browser")]
    assert not [m for m in messages if "Content Security Policy" in m], messages
