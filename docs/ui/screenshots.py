"""Take the screenshots of docs/ui.md: a fresh `transit server -dev`, some keys, a policy, an
audit device and a little traffic, then each page in headless chromium (tests/ui/browser.py).

    .venv/bin/python docs/ui/screenshots.py      # writes docs/ui/*.png

With `--cluster DIR URL`, the cluster page of a running HA cluster instead (cluster-ha.png),
e.g. one made by `VAULT_UI=true transit cluster up --dir DIR`, seen from the node at URL:

    .venv/bin/python docs/ui/screenshots.py --cluster /tmp/c http://127.0.0.1:8210
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from tests.helpers import free_port  # noqa: E402
from tests.ui.browser import chromium  # noqa: E402

OUT = Path(__file__).resolve().parent


def main() -> None:
    port = free_port()
    addr = f"http://127.0.0.1:{port}"
    tmp = tempfile.mkdtemp(prefix="transit-ui-shots-")
    proc = subprocess.Popen(
        [sys.executable, "-m", "transit", "server", "-dev", "-dev-root-token-id=root",
         f"-dev-listen-address=127.0.0.1:{port}"], cwd=ROOT, stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    s = requests.Session()
    s.headers["X-Vault-Token"] = "root"
    try:
        for _ in range(200):
            try:
                s.get(f"{addr}/v1/sys/health", timeout=0.5)
                break
            except requests.RequestException:
                time.sleep(0.05)
        v1 = f"{addr}/v1"
        s.post(f"{v1}/sys/mounts/payments", json={"type": "transit",
                                                   "description": "card data"})
        s.post(f"{v1}/transit/keys/orders", json={})
        for _ in range(2):
            s.post(f"{v1}/transit/keys/orders/rotate")
        s.post(f"{v1}/transit/keys/orders/config", json={"min_decryption_version": 2,
                                                         "deletion_allowed": True})
        s.post(f"{v1}/transit/keys/signing", json={"type": "ecdsa-p256"})
        s.post(f"{v1}/transit/keys/webhooks", json={"type": "hmac", "key_size": 32})
        s.post(f"{v1}/payments/keys/cards", json={"type": "aes256-gcm96",
                                                  "auto_rotate_period": "720h"})
        s.put(f"{v1}/sys/policies/acl/app", json={"policy": (
            'path "transit/encrypt/orders" {\n  capabilities = ["update"]\n}\n\n'
            'path "transit/decrypt/orders" {\n  capabilities = ["update"]\n}\n')})
        s.put(f"{v1}/sys/audit/file", json={"type": "file", "description": "all requests",
                                             "options": {"file_path": f"{tmp}/audit.log"}})

        stop = threading.Event()

        def traffic() -> None:
            t = requests.Session()
            t.headers["X-Vault-Token"] = "root"
            while not stop.is_set():
                t.post(f"{v1}/transit/encrypt/orders", json={"plaintext": "aGVsbG8="})
                time.sleep(0.01)

        worker = threading.Thread(target=traffic, daemon=True)
        worker.start()
        with chromium(1280, 820) as d:
            wait = WebDriverWait(d, 15, poll_frequency=0.05)

            def shot(route: str, ready: str, name: str) -> None:
                d.execute_script("location.hash = arguments[0]", f"#/{route}")
                wait.until(EC.visibility_of_element_located((By.CSS_SELECTOR, ready)))
                time.sleep(0.2)  # fonts and layout settle
                save(name)

            def save(name: str) -> None:
                """The whole page: the window grown to the document's height first."""
                d.set_window_size(1280, 820)
                height = d.execute_script("return document.documentElement.scrollHeight")
                d.set_window_size(1280, min(max(int(height) + 140, 500), 2400))
                d.save_screenshot(str(OUT / f"{name}.png"))

            d.get(f"{addr}/ui/#/login")
            wait.until(EC.visibility_of_element_located((By.ID, "token")))
            d.save_screenshot(str(OUT / "login.png"))
            d.find_element(By.ID, "token").send_keys("root")
            d.find_element(By.ID, "login").click()
            wait.until(EC.visibility_of_element_located((By.ID, "logout")))
            shot("cluster", "table.nodes", "cluster")
            shot("secrets", "table.mounts", "secrets")
            shot("keys/transit", "table.keys", "keys")
            shot("keys/transit/orders", "table.versions tr[data-version='3']", "key")
            shot("actions/transit/orders/encrypt", "#in-plaintext", "actions")
            d.find_element(By.ID, "in-plaintext").send_keys("4111 1111 1111 1111")
            d.find_element(By.ID, "run").click()
            wait.until(EC.visibility_of_element_located(
                (By.CSS_SELECTOR, "textarea[data-output=ciphertext]")))
            save("actions")
            shot("policies", "table.policies", "policies")
            shot("policies/app", "#policy-hcl", "policy")
            editor = d.find_element(By.ID, "policy-hcl")
            editor.send_keys('\npath "sys/*" {\n  capabilities = ["read"\n}\n')
            d.find_element(By.ID, "save-policy").click()
            wait.until(EC.visibility_of_element_located((By.CSS_SELECTOR, "#policy-error .error")))
            save("policy")
            shot("audit", "table.audit", "audit")
            shot("metrics", ".chart.rate svg", "metrics")
            time.sleep(16)  # a few polls: the charts draw lines
            save("metrics")
            d.set_window_size(390, 844)
            d.execute_script("location.hash = '#/keys/transit/orders'")
            wait.until(EC.visibility_of_element_located((By.CSS_SELECTOR, "table.versions")))
            time.sleep(0.2)
            d.save_screenshot(str(OUT / "narrow-key.png"))
            d.find_element(By.ID, "menu-toggle").click()
            time.sleep(0.2)
            d.save_screenshot(str(OUT / "narrow-menu.png"))
        stop.set()
        worker.join(5)
    finally:
        proc.terminate()
        proc.wait(10)
    print(f"screenshots in {OUT}")


def cluster(folder: str, url: str) -> None:
    token = (Path(folder) / "root-token").read_text().strip()
    with chromium(1280, 820) as d:
        wait = WebDriverWait(d, 15, poll_frequency=0.05)
        d.get(f"{url}/ui/#/login")
        wait.until(EC.visibility_of_element_located((By.ID, "token"))).send_keys(token)
        d.find_element(By.ID, "login").click()
        wait.until(EC.visibility_of_element_located((By.CSS_SELECTOR, "table.nodes")))
        time.sleep(0.3)
        d.save_screenshot(str(OUT / "cluster-ha.png"))
    print(f"{OUT / 'cluster-ha.png'}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--cluster"]:
        cluster(sys.argv[2], sys.argv[3])
    else:
        main()
