"""The capture page (capture = yes) in a real browser: headless Chromium
driven by Selenium (Debian's chromium, chromium-driver, python3-selenium).

The page must load under its CSP with no error (any console error fails a
test), show captured mail and new mail without a reload (the event stream,
from the newest message listed), show what the API says of a message (its
parts, attachments, links and codes; cid: images as the part's URL), show
its HTML only sanitized and in a sandboxed frame, run nothing from a hostile
message and fetch nothing from outside, and delete and release messages.
Everything runs against a real tern.
"""
import base64
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
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:  # pragma: no cover - scripts/deps.sh installs it
    webdriver = None

# Run in the page before its own scripts (through DevTools, so the page's CSP
# does not apply): records the URL of every EventSource the page opens.
RECORD_EVENT_SOURCES = """
window.ternEventSources = [];
window.EventSource = class extends window.EventSource {
  constructor(url, options) {
    super(url, options);
    window.ternEventSources.push(this.url);
  }
};
"""

# A 1x1 PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


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


def start_capture(inst, **params):
    """Starts inst with capture = yes (and params); inst.http is then the
    base URL of its capture API, on a free loopback port."""
    port = free_port()
    inst.write_config(capture="yes", capture_http_address=f"127.0.0.1:{port}", **params)
    inst.start()
    inst.http = f"http://127.0.0.1:{port}"

    def up():
        try:
            return http_get(inst.http + "/api/v1/messages")[0] == 200
        except OSError:
            return False
    wait_for(up, 20, "the capture API")
    return inst


@pytest.fixture
def capture(tern_instance):
    return start_capture(tern_instance)


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
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": RECORD_EVENT_SOURCES})
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
        if e.get("level") in ("SEVERE", "ERROR") or "Content Security Policy" in msg or "Refused to" in msg:
            bad.append(msg)
    return bad


def open_page(driver, base):
    driver.get(base + "/")
    # the module ran: it replaced the inbox list with at least "All messages"
    WebDriverWait(driver, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#inbox-list button"))


def list_subjects(driver):
    # read at once: the list may be redrawn between a find and a .text
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#message-list .msg-subject'), e => e.textContent)")


def open_message(driver, subject):
    WebDriverWait(driver, 10).until(lambda d: subject in list_subjects(d))

    def click(d):
        for b in d.find_elements(By.CSS_SELECTOR, "#message-list .msg"):
            if b.find_element(By.CSS_SELECTOR, ".msg-subject").text == subject:
                b.click()
                return True
        return False
    WebDriverWait(driver, 10, ignored_exceptions=(StaleElementReferenceException,)).until(click)
    settle(driver).until(lambda d: d.find_element(By.ID, "msg-subject").text == subject)


def settle(driver, timeout=10):
    """A wait that retries while the page redraws what it looks at."""
    return WebDriverWait(driver, timeout, ignored_exceptions=(NoSuchElementException, StaleElementReferenceException))


def fetched(driver):
    """The URLs the page fetched (resource timing), paths only."""
    return driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => new URL(e.name).pathname)")


def panel_texts(driver, selector):
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#tab-panel ' + arguments[0]), e => e.textContent)", selector)


def show_tab(driver, key):
    def click(d):
        d.find_element(By.ID, f"tab-{key}").click()
        return True
    settle(driver).until(click)
    settle(driver).until(lambda d: d.find_element(By.ID, f"tab-{key}").get_attribute("aria-selected") == "true")


def test_page_loads_and_shows_mail_live(capture, browser):
    send(capture, "before the page", "sent before the page was opened")
    wait_captured(capture, "before the page")
    _, listing = api_json(capture.http, "/api/v1/messages")
    newest = listing["messages"][0]
    open_page(browser, capture.http)
    WebDriverWait(browser, 10).until(lambda d: "before the page" in list_subjects(d))
    assert browser.title == "tern capture"
    # the event stream starts at the newest message listed, and is used
    WebDriverWait(browser, 10).until(lambda d: d.find_element(By.ID, "live").text == "Live")
    assert browser.execute_script("return window.ternEventSources") == \
        [f"{capture.http}/api/v1/events?last_event_id={newest['cursor']}"]
    # the inbox list names the recipient
    WebDriverWait(browser, 10).until(
        lambda d: "dev@example.test" in [e.text for e in d.find_elements(By.CSS_SELECTOR, "#inbox-list .addr")])

    browser.execute_script("window.ternTestMarker = 42")
    send(capture, "while the page is open", "arrives live")
    WebDriverWait(browser, 10).until(lambda d: "while the page is open" in list_subjects(d))
    # newest first, and no reload happened (the marker set above survives)
    assert list_subjects(browser)[:2] == ["while the page is open", "before the page"]
    assert browser.execute_script("return window.ternTestMarker") == 42
    # the inbox list is the server's, asked again after the event
    count = 'document.querySelector(\'#inbox-list button[data-address="dev@example.test"] .count\')?.textContent'
    WebDriverWait(browser, 10).until(lambda d: d.execute_script("return " + count) == "2")
    # a message that does not match the search is not streamed into the list
    browser.find_element(By.ID, "q-subject").send_keys("page is open")
    WebDriverWait(browser, 10).until(lambda d: list_subjects(d) == ["while the page is open"])
    WebDriverWait(browser, 10).until(
        lambda d: "subject=page+is+open" in d.execute_script("return window.ternEventSources")[-1])
    send(capture, "another one", "does not match")
    send(capture, "the page is open still", "matches")
    WebDriverWait(browser, 10).until(
        lambda d: list_subjects(d) == ["the page is open still", "while the page is open"])
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
    assert panel_texts(browser, "li code") == ["482913"]

    _, headers, _ = http_get(capture.http + "/")
    csp = headers["Content-Security-Policy"]
    script_src = re.search(r"script-src ([^;]*)", csp).group(1)
    assert re.search(r"'nonce-[A-Za-z0-9+/=]{16,}'", script_src)
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
    assert page_problems(browser) == [], "\n".join(page_problems(browser))


def test_pruned_banner(tern_instance, browser):
    """capture_max_messages = 2: the third message pushes the first out,
    and the page says so."""
    capture = start_capture(tern_instance, capture_max_messages="2")
    for n in range(3):
        send(capture, f"n{n}", "body")
        wait_captured(capture, f"n{n}")
    wait_for(lambda: api_json(capture.http, "/api/v1/messages")[1].get("pruned") == 1, 10, "the store to prune")
    open_page(browser, capture.http)
    WebDriverWait(browser, 10).until(lambda d: list_subjects(d) == ["n2", "n1"])
    banner = browser.find_element(By.ID, "pruned")
    assert banner.is_displayed()
    assert browser.find_element(By.ID, "pruned-text").text == "1 oldest message was removed (capture_max_messages)"
    # with the page open: the stream's pruned event
    send(capture, "n3", "body")
    WebDriverWait(browser, 10).until(lambda d: list_subjects(d) == ["n3", "n2"])
    WebDriverWait(browser, 10).until(
        lambda d: d.find_element(By.ID, "pruned-text").text == "2 oldest messages were removed (capture_max_messages)")
    browser.find_element(By.ID, "pruned-dismiss").click()
    assert not browser.find_element(By.ID, "pruned").is_displayed()
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
<style>@import url({u}/leak); body {{ background: url({u}/body-bg); }}
@font-face {{ font-family: x; src: url({u}/font); }} p {{ font-family: x; }}
@media screen {{ h1 {{ background: url({u}/media-bg); }} }}</style>
</head><body>
<script>window.parent.document.title='pwned'</script>
<img src=x onerror="parent.document.title='pwned2'">
<img src="{u}/pixel.gif" alt="tracker">
<a id="js" href="javascript:alert(1)">click me</a>
<a href=" JaVaScRiPt:parent.document.title='pwned3'">and me</a>
<div style="background-image: url({u}/div-bg)">styled</div>
<div style="background-image: image-set('{u}/image-set' 1x); cursor: url({u}/cursor), auto">more</div>
<img srcset="{u}/srcset 2x" alt="srcset">
<object data="{u}/object"></object><embed src="{u}/embed">
<base href="{u}/base/"><a href="relative">relative link</a>
<table background="{u}/table-bg"><tr><td>cell</td></tr></table>
<form action="{u}/form" method="post"><input name="q" value="1"><button id="go">Go</button></form>
<iframe src="{u}/frame"></iframe>
<svg><image href="{u}/svg-image"/></svg>
<video poster="{u}/poster" src="{u}/video"></video>
<p>hostile body text</p>
</body></html>"""
    # the listener does record what reaches it
    http_get(f"{u}/control")
    assert listener.hits == [("GET", "/control")]
    listener.hits.clear()
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

    # deleted elsewhere (through the API): the stream tells the page
    open_message(browser, "Keep me")
    kept = listing["messages"][0]
    assert api_json(capture.http, f"/api/v1/messages/{kept['id']}", "DELETE")[0] == 200
    WebDriverWait(browser, 10).until(lambda d: list_subjects(d) == [])
    settle(browser).until(lambda d: "This message was deleted." in d.find_element(By.ID, "view").text)
    send(capture, "one", "x")
    send(capture, "two", "x", to="other@example.test")
    WebDriverWait(browser, 10).until(lambda d: sorted(list_subjects(d)) == ["one", "two"])
    assert api_json(capture.http, "/api/v1/messages?inbox=dev@example.test", "DELETE")[0] == 200
    WebDriverWait(browser, 10).until(lambda d: list_subjects(d) == ["two"])
    addrs = "return Array.from(document.querySelectorAll('#inbox-list .addr'), e => e.textContent)"
    WebDriverWait(browser, 10).until(lambda d: d.execute_script(addrs) == ["All messages", "other@example.test"])
    assert api_json(capture.http, "/api/v1/messages", "DELETE")[0] == 200
    WebDriverWait(browser, 10).until(lambda d: list_subjects(d) == [])
    assert browser.find_element(By.ID, "list-count").text == "No messages."
    assert page_problems(browser) == [], "\n".join(page_problems(browser))


def test_message_view_shows_the_api_fields(capture, browser):
    """The view is the API's (GMime's) view of the message: addresses,
    header fields, links, codes, attachments with their download URLs, and
    the cid: image as its part's URL. Raw is fetched only for the Raw tab."""
    pdf = b"%PDF-1.4 fake invoice\n"
    msg = EmailMessage()
    msg["From"] = "Shop <noreply@shop.example>"
    msg["To"] = "Ann <ann@example.test>"
    msg["Cc"] = "Bob <bob@example.test>"
    msg["Subject"] = "Your code \u2013 verify"
    msg.set_content("Your verification code is 482913.\nConfirm: https://shop.example/confirm/abc\n")
    msg.add_alternative('<p>Code <b>482913</b> <a href="https://shop.example/confirm/abc?h=1">confirm</a>'
                        '<img id="logo" src="cid:logo@shop.example" alt="logo"></p>', subtype="html")
    msg.get_payload()[1].add_related(PNG, "image", "png", cid="<logo@shop.example>")
    msg.add_attachment(pdf, maintype="application", subtype="pdf", filename="invoice.pdf")
    with capture.smtp() as c:
        c.sendmail("noreply@shop.example", ["ann@example.test", "bob@example.test"], msg.as_bytes())
    mid = wait_captured(capture, "verify")["id"]
    status, m = api_json(capture.http, f"/api/v1/messages/{mid}")
    assert status == 200, m
    logo = [p for p in m["parts"] if p["content_id"] == "logo@shop.example"]
    assert len(logo) == 1 and logo[0]["url"] == f"/api/v1/messages/{mid}/parts/{logo[0]['part']}", m["parts"]
    assert [a["filename"] for a in m["attachments"]] == ["invoice.pdf"], m["attachments"]
    assert m["links"] and m["codes"] == ["482913"], (m["links"], m["codes"])

    open_page(browser, capture.http)
    open_message(browser, "Your code \u2013 verify")
    assert browser.find_element(By.ID, "msg-from").text == "Shop <noreply@shop.example>"
    assert browser.find_element(By.ID, "msg-to").text == "Ann <ann@example.test>"
    assert "Bob <bob@example.test>" in browser.find_element(By.ID, "view").text

    # the cid: image is the part's URL, and it loads in the sandboxed frame
    frame = WebDriverWait(browser, 10).until(lambda d: d.find_element(By.CSS_SELECTOR, "iframe.html-frame"))
    assert f'src="{logo[0]["url"]}"' in frame.get_attribute("srcdoc")
    browser.switch_to.frame(frame)
    try:
        settle(browser).until(lambda d: d.find_element(By.ID, "logo").get_property("naturalWidth") == 1)
    finally:
        browser.switch_to.default_content()

    show_tab(browser, "links")
    assert panel_texts(browser, "li") == m["links"]
    hrefs = [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "#tab-panel a")]
    assert hrefs == m["links"]
    show_tab(browser, "codes")
    assert panel_texts(browser, "li code") == m["codes"]
    show_tab(browser, "headers")
    assert "Your code \u2013 verify" in panel_texts(browser, "td")   # decoded by the server
    show_tab(browser, "attachments")
    link = browser.find_element(By.CSS_SELECTOR, "#tab-panel a")
    assert link.get_attribute("href") == capture.http + m["attachments"][0]["url"]
    assert "invoice.pdf" in browser.find_element(By.ID, "tab-panel").text
    assert http_get(link.get_attribute("href"))[2] == pdf
    show_tab(browser, "auth")
    auth = browser.find_element(By.ID, "tab-panel").text
    if m["authentication_results"]:
        assert m["authentication_results"] in auth
    else:
        assert auth.startswith("No Authentication-Results")
    show_tab(browser, "envelope")
    assert "ann@example.test, bob@example.test" in browser.find_element(By.ID, "tab-panel").text

    # everything so far came from the message's JSON: no raw message read
    assert f"/api/v1/messages/{mid}" in fetched(browser)
    assert not [u for u in fetched(browser) if u.endswith("/raw")]
    show_tab(browser, "raw")
    settle(browser).until(lambda d: "Content-Type: multipart/mixed" in d.find_element(By.ID, "tab-panel").text)
    assert f"/api/v1/messages/{mid}/raw" in fetched(browser)
    assert page_problems(browser) == [], "\n".join(page_problems(browser))


def test_release_from_the_page(tern_instance, browser):
    """Release: the queue ID, or the server's reason (the queue delivers
    the copy, here to a local peer through relayhost)."""
    from relay_peers import RecordingPeer
    peer_port = free_port()
    peer = RecordingPeer("127.0.0.1", peer_port)
    try:
        capture = start_capture(tern_instance, relayhost=f"[127.0.0.1]:{peer_port}",
                                capture_release_recipients="allowed.example")
        send(capture, "release me", "x")
        mid = wait_captured(capture, "release me")["id"]
        open_page(browser, capture.http)
        open_message(browser, "release me")
        box = browser.find_element(By.ID, "release-to")
        box.send_keys("dev@allowed.example")
        browser.find_element(By.CSS_SELECTOR, ".release button").click()
        status = WebDriverWait(browser, 10).until(
            lambda d: re.fullmatch(r"Released: queued as ([0-9A-Z]{13})\.",
                                   d.find_element(By.CSS_SELECTOR, ".action-status").text))
        got = peer.wait(1, timeout=20)
        assert got[0].rcpts == ["dev@allowed.example"] and b"Subject: release me" in got[0].content
        tern_instance.wait_log(f"{status.group(1)}: removed")
        assert page_problems(browser) == [], "\n".join(page_problems(browser))

        box.clear()
        box.send_keys("someone@elsewhere.example")
        browser.find_element(By.CSS_SELECTOR, ".release button").click()
        WebDriverWait(browser, 10).until(
            lambda d: d.find_element(By.CSS_SELECTOR, ".action-status").text.startswith("Release failed: ")
            and "capture_release_recipients" in d.find_element(By.CSS_SELECTOR, ".action-status").text)
        # the browser reports the 403 itself; nothing else
        assert [p for p in page_problems(browser) if f"/api/v1/messages/{mid}/release - " not in p] == []
    finally:
        peer.stop()
