"""The labelling screen in a real browser (Debian's chromium, headless, driven by Playwright).

An annotator logs in through the login form, labels 20 images with the keyboard alone (one by
accepting the model's suggestion, two while the server cannot be reached), skips one and undoes one; the
database then holds exactly the labels the keys meant. Screenshots land in tests/artifacts/.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from django.test import Client

from labelling.models import Annotation, Assignment, Image
from labelling.models.queue import AssignmentState
from tests.conftest import ROOT, require
from tests.factories import pool, queue_round
from workers.jobs.imports import FASHION_MNIST_CLASSES

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = ROOT / "tests" / "artifacts"


@pytest.fixture
def page(monkeypatch):
    require(Path(CHROMIUM).exists() or shutil.which("chromium") is not None, "Debian's chromium")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop running in this thread; the ORM calls the test makes
    # meanwhile are plain blocking ones, which Django would otherwise refuse in an async context.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()  # tabs can share it
        page.set_default_timeout(15_000)
        page.errors = []
        page.on("pageerror", lambda exc: page.errors.append(str(exc)))
        # Anything the pages' Content-Security-Policy blocked is an error too.
        page.on(
            "console",
            lambda m: (
                m.type == "error" and "Content Security Policy" in m.text and page.errors.append(m.text)
            ),
        )
        yield page
        browser.close()


def shown(page, *, not_assignment: str = "") -> tuple[int, int]:
    """Wait until an image is on screen and ready for keys (and it is not ``not_assignment``);
    return (assignment id, image id)."""
    page.wait_for_function(
        "prev => { const d = document.getElementById('annotate').dataset;"
        " return d.assignment && d.assignment !== prev; }",
        arg=not_assignment,
    )
    data = page.eval_on_selector("#annotate", "el => [el.dataset.assignment, el.dataset.image]")
    return int(data[0]), int(data[1])


@pytest.mark.django_db
def test_label_page_is_for_members_and_carries_the_label_set(users, project):
    client = Client()
    url = f"/projects/{project.id}/label/"
    assert client.get(url).url == f"/accounts/login/?next={url}"
    client.force_login(users["outsider"])
    assert client.get(url).status_code == 404
    client.force_login(users["annotator"])
    response = client.get(url)
    config = json.loads(re.search(r'id="annotate-config"[^>]*>(.*?)</script>', response.content.decode())[1])
    assert [(lc["name"], lc["hotkey"]) for lc in config["labels"]] == [
        ("cat", "1"),
        ("dog", "2"),
        ("bird", "3"),
    ]
    assert config["urls"]["next"] == f"/api/projects/{project.id}/queue/next?lookahead=1"
    assert "csrftoken" in response.cookies  # the script needs it for its POSTs
    assert f'href="{url}"' in client.get("/").content.decode()  # "Start labelling" on my projects


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_annotator_labels_twenty_images_by_keyboard(live_server, settings, page, users, project):
    # The live server runs in this process over plain http; secure cookies would never come back.
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
    project.audit_fraction = 0.0
    project.instructions = "Pick the animal you see. Skip when the image is too blurry to tell."
    project.save()
    images = pool(project, 21)  # 20 to label and 1 to skip, then the queue is empty
    queue_round(project, images)
    labels = list(project.label_classes.order_by("order"))
    key_label = {lc.hotkey: lc.id for lc in labels}  # {"1": cat, "2": dog, "3": bird}
    Image.objects.filter(pk=images[0].pk).update(predicted_label=labels[1], confidence=0.87)
    annotator = users["annotator"]
    expected: dict[int, int] = {}  # image id -> label id, what the keys meant

    # Log in through the form, then start labelling from "my projects", all by keyboard.
    page.goto(live_server.url + "/")
    page.fill("input[name=username]", annotator.username)
    page.fill("input[name=password]", "pw-for-tests")
    page.press("input[name=password]", "Enter")
    page.wait_for_url(live_server.url + "/")
    assert "My progress" in page.inner_text(f".card[data-project='{project.id}']")
    page.screenshot(path=str(ARTIFACTS / "annotate-browser-home.png"))
    page.get_by_role("link", name="Start labelling").press("Enter")
    page.wait_for_url(f"{live_server.url}/projects/{project.id}/label/")

    # 1: the model's suggestion is shown on a non-audit item; Enter accepts it.
    assignment, image = shown(page)
    assert image == images[0].id
    assert page.is_visible("#suggestion") and "87%" in page.inner_text("#suggestion")
    page.screenshot(path=str(ARTIFACTS / "annotate-browser-labelling.png"))
    page.keyboard.press("Enter")
    expected[image] = labels[1].id

    def label_with(key: str) -> None:
        nonlocal assignment, image
        assignment, image = shown(page, not_assignment=str(assignment))
        page.keyboard.press(key)
        expected[image] = key_label[key]

    # Labels 2..10. The 3rd and 4th are given while the server cannot be reached: the screen moves on
    # to the image fetched ahead, then says what is wrong; nothing is lost once the server is back.
    offline = re.compile(r"/api/(assignments/\d+/submit|projects/\d+/queue/next)")
    dropped: list[str] = []

    def drop(route):
        dropped.append(route.request.url)
        route.abort("connectionreset")

    for i in range(1, 10):
        if i == 2:
            page.wait_for_selector("#annotate[data-held='2'][data-pending='0']")  # the next one is here
            page.route(offline, drop)
        label_with(str(i % 3 + 1))
        if i == 3:
            page.wait_for_selector("#annotate[data-state='error'][data-pending='2']")
            assert "2 answer(s) kept here, not yet saved" in page.inner_text("#banner")
            page.screenshot(path=str(ARTIFACTS / "annotate-browser-network-error.png"))
            page.unroute(offline)
            page.locator("#stage-retry").press("Enter")
            page.wait_for_selector("#annotate[data-pending='0']")

    # Skip the 11th with a reason typed into the skip window.
    assignment, image = shown(page, not_assignment=str(assignment))
    skipped_image = image
    page.keyboard.press("s")
    page.wait_for_selector("#dlg-skip[open]")
    page.keyboard.type("too blurry")
    page.keyboard.press("Enter")

    for i in range(5):  # labels 11..15
        label_with(str(i % 3 + 1))
    last_image, last_label = image, expected[image]

    # Undo: my last label is taken back and its image is on screen again; label it differently.
    page.keyboard.press("u")
    page.wait_for_function(
        "img => { const d = document.getElementById('annotate').dataset;"
        " return d.assignment && d.image === img; }",
        arg=str(last_image),
    )
    assert "Took back your last label" in page.inner_text("#banner")
    assignment, image = shown(page)
    assert image == last_image
    del expected[image]
    new_key = next(k for k, v in key_label.items() if v != last_label)
    page.keyboard.press(new_key)
    expected[image] = key_label[new_key]

    for i in range(5):  # labels 16..20
        label_with(str(i % 3 + 1))

    # Everything sent and acknowledged, and the queue has nothing more for me: the empty state says why.
    page.wait_for_selector("#annotate[data-state='empty'][data-pending='0']")
    assert "Nothing left for you to label" in page.inner_text("#stage-text")
    assert page.inner_text("#p-today") == "20"
    page.screenshot(path=str(ARTIFACTS / "annotate-browser-queue-empty.png"))
    assert page.errors == []

    stored = Annotation.objects.filter(annotator=annotator)
    assert len(expected) == 20
    assert {a.image_id: a.label_id for a in stored} == expected
    assert all(a.seconds_spent is not None and 0 <= a.seconds_spent < 60 for a in stored)
    skips = Assignment.objects.filter(annotator=annotator, state=AssignmentState.SKIPPED)
    assert [(s.item.image_id, s.skip_reason) for s in skips] == [(skipped_image, "too blurry")]
    assert sum(url.endswith("/submit") for url in dropped) >= 2


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_twenty_labels_a_double_click_the_flag_window_and_a_lost_session(live_server, settings, page, users):
    # Twenty labels: hotkeys 1-9, 0 and then letters, never the command letters s, u, f, i. A double
    # click stores one label; Enter in the flag window cancels; Shift+digit (AZERTY) is the digit's
    # label; answers given while logged out are sent once a login in another tab brings the session back.
    from tests.factories import project_with_members

    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
    names = [f"class {i:02d}" for i in range(20)]
    project = project_with_members(
        admin=users["admin"], annotator=users["annotator"], labels=names, name="Many", audit_fraction=0.0
    )
    labels = list(project.label_classes.order_by("order"))
    hotkeys = [lc.hotkey for lc in labels]
    assert hotkeys[:10] == list("1234567890") and not set("sufi") & set(hotkeys) and len(set(hotkeys)) == 20
    images = pool(project, 8)
    queue_round(project, images)
    annotator = users["annotator"]

    def log_in(tab) -> None:
        tab.goto(live_server.url + "/accounts/login/")
        tab.fill("input[name=username]", annotator.username)
        tab.fill("input[name=password]", "pw-for-tests")
        tab.press("input[name=password]", "Enter")
        tab.wait_for_url(live_server.url + "/")

    def stored() -> dict[int, int]:
        return dict(Annotation.objects.filter(annotator=annotator).values_list("image_id", "label_id"))

    log_in(page)
    page.goto(f"{live_server.url}/projects/{project.id}/label/")
    assert page.inner_text("#btn-flag kbd") == "F"

    # F opens the flag window; Enter there cancels (focus starts on Cancel), nothing is flagged.
    assignment, image = shown(page)
    page.keyboard.press("f")
    page.wait_for_selector("#dlg-flag[open]")
    page.keyboard.press("Enter")
    page.wait_for_selector("#dlg-flag", state="hidden")
    assert not Assignment.objects.filter(annotator=annotator, state=AssignmentState.FLAGGED).exists()

    # A double click on a label button labels the image on screen once, not the next one too.
    page.wait_for_timeout(300)
    page.dblclick(f"#labels button[data-label='{labels[12].id}']")
    page.wait_for_selector("#annotate[data-pending='0']")
    page.wait_for_timeout(500)
    assert stored() == {image: labels[12].id}
    # A click too soon after an image shows is ignored, and Enter a moment later accepts the
    # suggestion (there is none here: nothing is stored); it does not press the ignored button (which
    # kept the focus from the click, and Enter labelled the image with it).
    assignment, image = shown(page, not_assignment=str(assignment))
    page.wait_for_timeout(300)
    page.keyboard.press("3")
    assignment, image = shown(page, not_assignment=str(assignment))
    page.click(f"#labels button[data-label='{labels[5].id}']")  # within 250 ms of the image
    page.wait_for_timeout(400)
    page.keyboard.press("Enter")
    page.wait_for_selector("#annotate[data-pending='0']")
    page.wait_for_timeout(500)
    assert image not in stored() and len(stored()) == 2

    # Shift+2, as an AZERTY keyboard types 2: the label of hotkey 2.
    page.wait_for_timeout(300)
    page.evaluate(
        "document.body.dispatchEvent(new KeyboardEvent('keydown', {key: '2', shiftKey: true, bubbles: true}))"
    )
    shown(page, not_assignment=str(assignment))  # answered: the next image is up
    page.wait_for_selector("#annotate[data-pending='0']")
    assert stored()[image] == labels[1].id

    # The session ends (cookies gone): the next answer waits on the page, which says so.
    assignment, image = shown(page, not_assignment=str(assignment))
    page.context.clear_cookies()
    page.keyboard.press("g")  # hotkey of the 15th label (1-9, 0, a-e, then g: f is skipped)
    assert labels[15].hotkey == "g"
    page.wait_for_selector("#annotate[data-state='logged-out']")
    assert page.get_attribute("#stage-login", "target") == "_blank"
    assert image not in stored()
    # Logging in again in the tab the page's link opens, which then says to go back (it opened a
    # second labelling page, holding images of its own): back here, the kept answer goes out by itself.
    other = page.context.new_page()
    other.goto(live_server.url + page.get_attribute("#stage-login", "href"))
    other.fill("input[name=username]", annotator.username)
    other.fill("input[name=password]", "pw-for-tests")
    other.press("input[name=password]", "Enter")
    other.wait_for_url(live_server.url + "/accounts/logged-in/")
    assert "Close this tab and go back to the labelling tab" in other.inner_text("main")
    other.close()
    page.bring_to_front()
    page.wait_for_selector("#annotate[data-pending='0']:not([data-state='logged-out'])", timeout=20_000)
    assert stored()[image] == labels[15].id
    assert len(stored()) == 4 and page.errors == []


def log_in(page, live_server, user) -> None:
    page.goto(live_server.url + "/accounts/login/")
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", "pw-for-tests")
    page.press("input[name=password]", "Enter")
    page.wait_for_url(live_server.url + "/")


def queued_without_audit(settings, project, n: int) -> list:
    """Cookies a plain-HTTP live server can carry, no audit items (every image shows its
    suggestion), and ``n`` pool images queued: the images."""
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
    project.audit_fraction = 0.0
    project.save()
    images = pool(project, n)
    queue_round(project, images)
    return images


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_keys_in_the_flag_and_skip_windows_answer_the_window_not_a_label(
    live_server, settings, page, users, project
):
    # The flag window's 1/2/3 and the skip window's 1/2 are also label hotkeys (cat, dog, bird):
    # the key must flag or skip the image, never label it (nor the next one).
    queued_without_audit(settings, project, 8)
    annotator = users["annotator"]
    log_in(page, live_server, annotator)
    page.goto(f"{live_server.url}/projects/{project.id}/label/")

    assignment = ""
    flagged, skipped = {}, {}
    for key, reason in [("1", "broken"), ("2", "ambiguous"), ("3", "other")]:
        assignment, image = shown(page, not_assignment=str(assignment))
        page.keyboard.press("f")
        page.wait_for_selector("#dlg-flag[open]")
        page.keyboard.press(key)
        flagged[image] = reason
    for keys, reason in [
        ("1", "not sure which label"),
        ("2", "cannot see it well"),
        ("why not\n", "why not"),
    ]:
        assignment, image = shown(page, not_assignment=str(assignment))
        page.keyboard.press("s")
        page.wait_for_selector("#dlg-skip[open]")
        for key in keys:
            page.keyboard.press("Enter" if key == "\n" else key)
        skipped[image] = reason
    shown(page, not_assignment=str(assignment))
    page.wait_for_selector("#annotate[data-pending='0']")
    page.wait_for_timeout(300)  # a stray label would be on its way now

    assert not Annotation.objects.filter(annotator=annotator).exists()
    answers = Assignment.objects.filter(annotator=annotator)
    flags = answers.filter(state=AssignmentState.FLAGGED)
    assert {f.item.image_id: f.skip_reason for f in flags} == flagged
    assert all(Image.objects.get(pk=i).status == "flagged" for i in flagged)
    skips = answers.filter(state=AssignmentState.SKIPPED)
    assert {s.item.image_id: s.skip_reason for s in skips} == skipped
    assert page.errors == []


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_enter_after_a_skip_or_flag_window_closed_with_esc_accepts_the_suggestion(
    live_server, settings, page, users, project
):
    # Skip and Flag opened with the mouse, then cancelled with Esc: Enter accepts the model's
    # suggestion, as after a label button or Undo, instead of opening the window again.
    images = queued_without_audit(settings, project, 4)
    dog = project.label_classes.get(name="dog")
    Image.objects.filter(pk__in=[i.pk for i in images]).update(predicted_label=dog, confidence=0.9)
    annotator = users["annotator"]
    log_in(page, live_server, annotator)
    page.goto(f"{live_server.url}/projects/{project.id}/label/")

    assignment, image = shown(page)
    accepted = []
    for button, dialog in [("#btn-skip", "#dlg-skip"), ("#btn-flag", "#dlg-flag")]:
        page.click(button)
        page.wait_for_selector(f"{dialog}[open]")
        page.keyboard.press("Escape")
        page.wait_for_selector(dialog, state="hidden")
        page.keyboard.press("Enter")
        accepted.append(image)
        assignment, image = shown(page, not_assignment=str(assignment))  # the next image is up
        assert page.eval_on_selector_all("dialog[open]", "els => els.length") == 0, button
    page.wait_for_selector("#annotate[data-pending='0']")

    stored = Annotation.objects.filter(annotator=annotator)
    assert {a.image_id: a.label_id for a in stored} == {image: dog.id for image in accepted}
    assert not Assignment.objects.filter(
        annotator=annotator, state__in=[AssignmentState.SKIPPED, AssignmentState.FLAGGED]
    ).exists()
    assert page.errors == []


FASHION = FASHION_MNIST_CLASSES  # the demo project's label set: the longest names a page shows

# Each label button's box, the box of the list they scroll in, and the window's height.
BUTTON_BOXES = """() => {
  const list = document.getElementById('labels').getBoundingClientRect();
  const boxes = [...document.querySelectorAll('#labels button')].map(b => {
    const r = b.getBoundingClientRect();
    return {name: b.innerText, top: r.top, bottom: r.bottom, left: r.left, right: r.right};
  });
  return {list: {top: list.top, bottom: list.bottom}, boxes, height: innerHeight};
}"""


def open_labelling(page, live_server, users, labels: list[str]) -> None:
    from tests.factories import project_with_members

    project = project_with_members(
        admin=users["admin"], annotator=users["annotator"], labels=labels, name="Fashion", audit_fraction=0.0
    )
    images = pool(project, 3)
    queue_round(project, images)
    first = project.label_classes.get(name=labels[0])
    Image.objects.filter(pk=images[0].pk).update(
        predicted_label=first, confidence=0.9
    )  # the suggestion box too
    log_in(page, live_server, users["annotator"])
    page.goto(f"{live_server.url}/projects/{project.id}/label/")
    shown(page)


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_all_ten_label_buttons_are_on_screen_at_1280_by_800(live_server, settings, page, users):
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
    open_labelling(page, live_server, users, FASHION)
    assert page.is_visible("#suggestion")
    found = page.evaluate(BUTTON_BOXES)
    assert [b["name"].split("\n")[-1] for b in found["boxes"]] == FASHION
    for box in found["boxes"]:
        # Whole, not cut by the list's scroll box nor by the bottom of the window.
        assert found["list"]["top"] - 1 <= box["top"] and box["bottom"] <= found["list"]["bottom"] + 1, box
        assert box["bottom"] <= found["height"], box
    page.screenshot(path=str(ARTIFACTS / "annotate-browser-1280x800.png"))


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_labelling_page_on_a_phone_stacks_image_first_at_full_width(live_server, settings, page, users):
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
    page.set_viewport_size({"width": 390, "height": 844})
    open_labelling(page, live_server, users, FASHION)
    stage = page.eval_on_selector("#stage", "e => e.getBoundingClientRect().toJSON()")
    image = page.eval_on_selector("#image", "e => e.getBoundingClientRect().toJSON()")
    labels = page.eval_on_selector("#labels", "e => e.getBoundingClientRect().toJSON()")
    assert stage["width"] >= 340 and image["width"] >= 300, (stage, image)
    assert labels["top"] >= stage["bottom"]  # the image first, the buttons below it
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing sticks out sideways
    # Every label can be reached: scrolled to, each button is whole on screen.
    for button in page.query_selector_all("#labels button"):
        button.scroll_into_view_if_needed()
        box = button.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 390, box
        assert box["y"] >= -1 and box["y"] + box["height"] <= 845, box  # a pixel for rounding
    page.screenshot(path=str(ARTIFACTS / "annotate-browser-390x844.png"), full_page=True)
    # A small phone (375 x 667): the whole image and the first labels on one screen, so labelling
    # needs no scrolling between images (it did: the buttons began below the fold).
    page.set_viewport_size({"width": 375, "height": 667})
    page.evaluate("window.scrollTo(0, 0)")
    image = page.eval_on_selector("#image", "e => e.getBoundingClientRect().toJSON()")
    first = page.eval_on_selector("#labels button", "e => e.getBoundingClientRect().toJSON()")
    assert image["top"] >= 0 and first["bottom"] <= 667, (image, first)
    page.screenshot(path=str(ARTIFACTS / "annotate-browser-375x667.png"))


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_images_taken_back_leave_the_open_page(live_server, settings, page, users, project):
    # The page holds an image (and the next); an admin lowers the budget to the labels given: the
    # server takes the reservations back, and the open page drops them by itself within its check
    # interval and says the budget is used up, instead of letting the annotator label and be refused.
    # The same for an image whose label an engineer imports.
    from labelling.services.label_imports import labels_import
    from labelling.services.projects import project_update

    settings.ANNOTATE_CHECK_SECONDS = 1
    images = queued_without_audit(settings, project, 4)
    project.label_budget = 10
    project.save()
    log_in(page, live_server, users["annotator"])
    page.goto(f"{live_server.url}/projects/{project.id}/label/")
    assignment, image = shown(page)
    cat = project.label_classes.order_by("order").first()
    labels_import(project=project, user=users["engineer"], rows=[{"image": image, "label": cat.name}])
    assignment, image = shown(page, not_assignment=str(assignment))  # the imported one left
    page.wait_for_timeout(300)
    page.keyboard.press("1")  # one label given (the import spent none)
    assignment, image = shown(page, not_assignment=str(assignment))
    page.wait_for_selector("#annotate[data-pending='0']")
    project.refresh_from_db()
    project_update(project=project, label_budget=1)  # nothing left: every reservation goes back
    page.wait_for_selector("#annotate[data-empty-reason='budget_exhausted']", timeout=10_000)
    assert Annotation.objects.filter(imported=False).count() == 1 and page.errors == []
    assert len(images) == 4


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_long_label_names_wrap_and_a_skip_reason_is_a_tap(live_server, settings, page, users):
    # A review: 72-80 character names made every button 635 px wide in a 280 px column (cut off);
    # the skip window's reasons were keys only, so a tap on Skip saved "no reason given".
    from labelling.models import Assignment

    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
    names = ["Crested_porcupine_juvenile_nocturnal_foraging_behaviour_observed_in_thermal_imagery",
             "Eurasian red squirrel (Sciurus vulgaris) partially hidden behind a branch", "cat"]  # fmt: skip
    open_labelling(page, live_server, users, names)
    widths = page.eval_on_selector("#labels", "e => [e.scrollWidth, e.clientWidth]")
    assert widths[0] <= widths[1] + 1, widths  # nothing cut off sideways
    page.keyboard.press("s")
    page.wait_for_selector("#dlg-skip[open]")
    page.click("#dlg-skip [data-reason='cannot see it well']")
    page.wait_for_selector("#annotate[data-pending='0']")
    assert Assignment.objects.get(state="skipped").skip_reason == "cannot see it well"
    assert not page.errors
