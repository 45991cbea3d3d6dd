"""The capture page (capture = yes) in a real browser: headless Chromium
driven by Selenium (Debian's chromium, chromium-driver, python3-selenium).

The page must load under its CSP with no error, show captured mail and new
mail without a reload, show a message's HTML only sanitized and in a
sandboxed frame, run nothing from a hostile message and fetch nothing from
outside, and delete a message.
"""
import http.server
import json
import os
import re
import shutil
import tempfile
import threading
import time
import urllib.error
import urllib.request
from email.message import EmailMessage

import pytest

from conftest import free_port

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:  # pragma: no cover - scripts/deps.sh installs it
    webdriver = None

# Console lines the page may log today: the API does not yet have
# GET /api/v1/inboxes and /api/v1/events, so the browser reports their 404s
# (and the EventSource's refusal of a JSON 404) while the page falls back to
# deriving inboxes and polling. Nothing else may appear.
MISSING_ENDPOINTS = re.compile(r"/api/v1/(inboxes|events)\b")


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, dict(r.headers), r.read()


def api_json(base, path, method="GET"):
    req = urllib.request.Request(base + path, method=method)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def wait_for(cond, timeout=10.0, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def capture(tern_instance):
    """A tern with capture = yes; .http is the base URL of its capture API."""
    port = free_port()
    tern_instance.write_config(capture="yes", capture_http_address=f"127.0.0.1:{port}")
    tern_instance.start()
    tern_instance.http = f"http://127.0.0.1:{port}"

    def up():
        try:
            return http_get(tern_instance.http + "/api/v1/messages")[0] == 200
        except OSError:
            return False
    wait_for(up, 20, "the capture API")
    return tern_instance


def send(inst, subject, text, html=None, to="dev@example.test", sender="app@example.org"):
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content(text)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    with inst.smtp() as c:
        c.sendmail(sender, [to], msg.as_bytes())


def wait_captured(inst, subject, timeout=10):
    def find():
        _, body = api_json(inst.http, "/api/v1/messages?subject=" + urllib.request.quote(subject))
        return body.get("messages")
    return wait_for(find, timeout, f"message {subject!r} in the API")[0]


@pytest.fixture
def browser():
    if webdriver is None or not os.path.exists(CHROMEDRIVER) or not os.path.exists(CHROMIUM):
        pytest.skip("needs chromium, chromium-driver and python3-selenium (scripts/deps.sh test)")
    profile = tempfile.mkdtemp(prefix="tern-chromium-")
    opts = Options()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--no-first-run", "--disable-extensions", "--disable-sync", "--disable-background-networking",
                "--disable-component-update", "--disable-default-apps", f"--user-data-dir={profile}",
                "--window-size=1400,1000"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(30)
    driver.console = []  # every console line seen (get_log drains the browser's)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def console(driver):
    driver.console += driver.get_log("browser")
    return driver.console


def page_problems(driver):
    """Console lines that mean something went wrong: errors, CSP reports."""
    bad = []
    for e in console(driver):
        msg = e.get("message", "")
        if MISSING_ENDPOINTS.search(msg):
            continue
        if e.get("level") in ("SEVERE", "ERROR") or "Content Security Policy" in msg or "Refused to" in msg:
            bad.append(msg)
    return bad


def open_page(driver, base):
    driver.get(base + "/")
    # the module ran: it replaced the inbox list with at least "All messages"
    WebDriverWait(driver, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#inbox-list button"))


def list_subjects(driver):
    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#message-list .msg-subject")]


def open_message(driver, subject):
    WebDriverWait(driver, 10).until(lambda d: subject in list_subjects(d))
    for b in driver.find_elements(By.CSS_SELECTOR, "#message-list .msg"):
        if b.find_element(By.CSS_SELECTOR, ".msg-subject").text == subject:
            b.click()
            break
    WebDriverWait(driver, 10).until(
        lambda d: d.find_elements(By.ID, "msg-subject") and d.find_element(By.ID, "msg-subject").text == subject)


def show_tab(driver, key):
    driver.find_element(By.ID, f"tab-{key}").click()
    WebDriverWait(driver, 5).until(
        lambda d: d.find_element(By.ID, f"tab-{key}").get_attribute("aria-selected") == "true")


def test_page_loads_and_shows_mail_live(capture, browser):
    send(capture, "before the page", "sent before the page was opened")
    wait_captured(capture, "before the page")
    open_page(browser, capture.http)
    WebDriverWait(browser, 10).until(lambda d: "before the page" in list_subjects(d))
    assert browser.title == "tern capture"
    # the inbox list names the recipient
    WebDriverWait(browser, 10).until(
        lambda d: "dev@example.test" in [e.text for e in d.find_elements(By.CSS_SELECTOR, "#inbox-list .addr")])

    browser.execute_script("window.ternTestMarker = 42")
    send(capture, "while the page is open", "arrives live")
    WebDriverWait(browser, 10).until(lambda d: "while the page is open" in list_subjects(d))
    # newest first, and no reload happened (the marker set above survives)
    assert list_subjects(browser)[:2] == ["while the page is open", "before the page"]
    assert browser.execute_script("return window.ternTestMarker") == 42
    assert page_problems(browser) == [], "\n".join(page_problems(browser))


def test_message_view_html_is_sandboxed(capture, browser):
    html = ("<html><head><style>h1 { color: rgb(0, 0, 200); }</style></head><body>"
            "<h1>Welcome aboard</h1>"
            "<p class=\"x\" style=\"color: rgb(200, 0, 0)\">Your code is 482913.</p>"
            "<a href=\"https://example.org/confirm?t=1\">Confirm</a></body></html>")
    send(capture, "Welcome", "Welcome aboard.\nYour code is 482913.\n", html=html)
    wait_captured(capture, "Welcome")
    open_page(browser, capture.http)
    open_message(browser, "Welcome")

    show_tab(browser, "text")
    assert "Your code is 482913." in browser.find_element(By.ID, "msg-text").text

    show_tab(browser, "html")
    frame = WebDriverWait(browser, 10).until(lambda d: d.find_element(By.CSS_SELECTOR, "iframe.html-frame"))
    sandbox = frame.get_attribute("sandbox")
    assert sandbox is not None
    tokens = sandbox.split()
    assert "allow-scripts" not in tokens and "allow-same-origin" not in tokens
    srcdoc = frame.get_attribute("srcdoc")
    assert "Welcome aboard" in srcdoc and "482913" in srcdoc
    assert 'target="_blank"' in srcdoc and "noopener" in srcdoc

    # the message's styles apply (through the page's nonce, not inline styles)
    browser.switch_to.frame(frame)
    try:
        assert browser.find_element(By.TAG_NAME, "h1").value_of_css_property("color") == "rgba(0, 0, 200, 1)"
        assert browser.find_element(By.TAG_NAME, "p").value_of_css_property("color") == "rgba(200, 0, 0, 1)"
    finally:
        browser.switch_to.default_content()

    for key in ("codes", "links", "headers", "envelope", "raw"):
        show_tab(browser, key)
    show_tab(browser, "codes")
    assert "482913" in browser.find_element(By.ID, "tab-panel").text

    _, headers, _ = http_get(capture.http + "/")
    csp = headers["Content-Security-Policy"]
    script_src = re.search(r"script-src ([^;]*)", csp).group(1)
    assert re.search(r"'nonce-[A-Za-z0-9+/=]{16,}'", script_src)
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
    assert page_problems(browser) == [], "\n".join(page_problems(browser))


class Listener:
    """A local HTTP server that records every request it gets."""

    def __init__(self):
        self.hits = []
        hits = self.hits

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                hits.append(("GET", self.path))
                self.send_response(200)
                self.send_header("Content-Type", "text/css")
                self.end_headers()

            do_POST = do_GET

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def listener():
    ln = Listener()
    yield ln
    ln.close()


def test_hostile_message_runs_and_reaches_nothing(capture, browser, listener):
    u = f"http://127.0.0.1:{listener.port}"
    html = f"""<html><head>
<meta http-equiv="refresh" content="0;url={u}/refresh">
<link rel="stylesheet" href="{u}/link.css">
<style>@import url({u}/leak); body {{ background: url({u}/body-bg); }}</style>
</head><body>
<script>window.parent.document.title='pwned'</script>
<img src=x onerror="parent.document.title='pwned2'">
<img src="{u}/pixel.gif" alt="tracker">
<a id="js" href="javascript:alert(1)">click me</a>
<a href=" JaVaScRiPt:parent.document.title='pwned3'">and me</a>
<div style="background-image: url({u}/div-bg)">styled</div>
<table background="{u}/table-bg"><tr><td>cell</td></tr></table>
<form action="{u}/form" method="post"><input name="q" value="1"><button id="go">Go</button></form>
<iframe src="{u}/frame"></iframe>
<svg><image href="{u}/svg-image"/></svg>
<video poster="{u}/poster" src="{u}/video"></video>
<p>hostile body text</p>
</body></html>"""
    send(capture, "Hostile", "hostile text part", html=html)
    wait_captured(capture, "Hostile")
    open_page(browser, capture.http)
    open_message(browser, "Hostile")
    show_tab(browser, "html")
    frame = WebDriverWait(browser, 10).until(lambda d: d.find_element(By.CSS_SELECTOR, "iframe.html-frame"))
    srcdoc = frame.get_attribute("srcdoc")
    assert "hostile body text" in srcdoc
    assert not re.search(r"javascript\s*:", srcdoc, re.I)
    assert "<script" not in srcdoc.lower() and "onerror" not in srcdoc.lower()
    assert f"127.0.0.1:{listener.port}" not in srcdoc
    tokens = frame.get_attribute("sandbox").split()
    assert "allow-scripts" not in tokens and "allow-same-origin" not in tokens
    # the page says what it did not load
    assert "not loaded" in browser.find_element(By.ID, "tab-panel").text

    # clicking the links inside the frame runs nothing either
    browser.switch_to.frame(frame)
    try:
        for a in browser.find_elements(By.TAG_NAME, "a"):
            a.click()
    finally:
        browser.switch_to.default_content()

    time.sleep(3)
    assert browser.title == "tern capture"
    assert listener.hits == []
    assert page_problems(browser) == [], "\n".join(page_problems(browser))


def test_delete_from_the_page(capture, browser):
    send(capture, "Delete me", "to be deleted")
    send(capture, "Keep me", "to be kept")
    doomed = wait_captured(capture, "Delete me")
    wait_captured(capture, "Keep me")
    open_page(browser, capture.http)
    open_message(browser, "Delete me")
    browser.find_element(By.ID, "delete-message").click()
    WebDriverWait(browser, 10).until(lambda d: "Delete me" not in list_subjects(d))
    assert "Keep me" in list_subjects(browser)
    status, body = api_json(capture.http, f"/api/v1/messages/{doomed['id']}")
    assert status == 404, body
    _, listing = api_json(capture.http, "/api/v1/messages")
    assert [m["subject"] for m in listing["messages"]] == ["Keep me"]
    assert page_problems(browser) == [], "\n".join(page_problems(browser))
