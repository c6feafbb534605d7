// The labelling screen. Plain JavaScript, no build step.
//
// Model: `held` is what the server has reserved for me, in order; held[0] is on screen and held[1]
// is the upcoming item whose image is already loading. Answering an item (label, skip, flag) drops
// it from `held` at once, so the next image appears without waiting for the server, and puts the
// answer in `outbox`. The outbox is sent in order, one request at a time, and an entry leaves it
// only when the server has acknowledged it: a network error or a 5xx keeps it and retries with
// backoff, so no label is lost to a flaky connection (submits are idempotent on the server, so a
// retry after a timeout that did reach it stores one annotation).
(function () {
  "use strict";

  const config = JSON.parse(document.getElementById("annotate-config").textContent);
  const $ = (id) => document.getElementById(id);
  const root = $("annotate");
  const img = $("image");
  const stage = $("stage");
  const labelById = new Map(config.labels.map((l) => [l.id, l]));
  const labelByKey = new Map(config.labels.filter((l) => l.hotkey).map((l) => [l.hotkey.toLowerCase(), l]));

  const EMPTY_TEXT = {
    paused: "Labelling is paused for this project. An admin paused it; this page checks again every few seconds.",
    budget_exhausted:
      "The project's label budget is used up (or its last labels are reserved by other annotators right now). Thank you!",
    preparing:
      "Getting ready: the model is learning this project's images (a few minutes). The first images to label follow by themselves; this page checks again every few seconds.",
    waiting_for_model:
      "Waiting for the model to retrain. New images are queued when it finishes; this page checks again every few seconds.",
    pool_labelled: "Every image of this project's pool is labelled. Thank you!",
    not_started:
      "Labelling has not started: an admin starts it from the project's dashboard (Pretrain on the pool). This page checks again every few seconds.",
    training_failed:
      "Nothing to label: the last model training failed or was cancelled, so no new images are coming by themselves. An admin can retry it from the dashboard; this page checks again every few seconds.",
    queue_empty: "Nothing left for you to label right now. New images arrive with the next selection round.",
  };
  const CODE_TEXT = {
    reservation_expired: "Your reservation of that image expired and it went to someone else, so that label was not stored.",
    already_submitted: "You had already labelled that image with another label; undo it to change it.",
    budget_exhausted: "The label budget was spent before that label arrived, so it was not stored.",
    item_removed:
      "That image left the queue meanwhile (another annotator flagged it, or its label was imported), so your label was not stored.",
  };

  const IDLE_MS = 5 * 60 * 1000;
  const state = {
    activeAt: Date.now(), // the annotator's last key or click: an idle page stops checking its holds
    held: [],
    shownId: null, // the assignment whose image is on screen
    shownAt: 0, // performance.now() when it appeared: seconds spent are measured from here
    done: new Set(), // assignment ids answered on this page: never shown again, even if the server still holds them
    outbox: [],
    sending: false,
    drainWaiters: [],
    fetching: false,
    refetch: false,
    busy: null, // "undo" while an undo is on its way: keys wait
    emptyReason: null,
    failure: null, // {what, message} while the server cannot be reached
    retryDelay: 0,
    retryTimer: null,
    retryAt: 0,
    loggedOut: false,
    serverToday: 0,
    left: null,
    leftMore: false,
    ackSeq: 0,
    skewMs: 0, // server clock minus this clock, from the Date header, for reservation expiry
    pollTimer: null,
    noticeTimer: null,
    preload: null,
    notice: null,
  };

  // --- talking to the server ---------------------------------------------------------------------

  function csrfToken() {
    const m = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return m ? decodeURIComponent(m[1]) : "";
  }

  // Resolves to {network: true} when the server could not be reached, else {status, ok, body}.
  async function api(method, url, body) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), 15000);
    const options = { method, credentials: "same-origin", headers: { Accept: "application/json" }, signal: controller.signal };
    if (method !== "GET") {
      options.headers["Content-Type"] = "application/json";
      options.headers["X-CSRFToken"] = csrfToken();
      options.body = JSON.stringify(body || {});
    }
    let response;
    try {
      response = await fetch(url, options);
    } catch (err) {
      return { network: true };
    } finally {
      clearTimeout(timer);
    }
    const date = Date.parse(response.headers.get("Date") || "");
    if (!Number.isNaN(date)) state.skewMs = date - Date.now();
    let data = null;
    if (response.status !== 204) {
      try {
        data = await response.json();
      } catch (err) {
        data = null;
      }
    }
    // A proxy's 502/503/504 or our own 500 are worth retrying, like a dropped connection.
    if (response.status >= 500 || response.status === 429) return { network: true, status: response.status };
    return { status: response.status, ok: response.ok, body: data };
  }

  function errorCode(r) {
    return (r.body && r.body.error && r.body.error.code) || "";
  }

  function errorMessage(r) {
    return (r.body && r.body.error && r.body.error.message) || "the server refused it (" + r.status + ")";
  }

  // Also a CSRF refusal: the token rotates when the session does (a login in another tab).
  function isLoggedOut(r) {
    if (r.status === 401) return true;
    if (r.status !== 403) return false;
    return ["not_authenticated", "authentication_failed"].includes(errorCode(r)) || /CSRF/.test(errorMessage(r));
  }

  function failed(what) {
    state.failure = { what };
    state.retryDelay = Math.min(30000, state.retryDelay ? state.retryDelay * 2 : 1000);
    state.retryAt = Date.now() + state.retryDelay;
    clearTimeout(state.retryTimer);
    state.retryTimer = setTimeout(retryNow, state.retryDelay);
    render();
  }

  function recovered() {
    if (!state.failure) return;
    state.failure = null;
    state.retryDelay = 0;
    clearTimeout(state.retryTimer);
    state.retryTimer = null;
    // The server answers again: whatever waits in the outbox goes now, not at the next retry.
    if (state.outbox.length && !state.sending) setTimeout(pump, 0);
    render();
  }

  function retryNow() {
    clearTimeout(state.retryTimer);
    state.retryTimer = null;
    pump();
    refresh();
  }

  // While logged out the page asks every few seconds (and when it gets focus back) whether the
  // session works again, for instance after "Log in again" in another tab; then the answers kept
  // here are sent.
  function loggedOut() {
    state.loggedOut = true;
    clearTimeout(state.loginTimer);
    state.loginTimer = setTimeout(checkLogin, 5000);
    render();
  }

  async function checkLogin() {
    clearTimeout(state.loginTimer);
    if (!state.loggedOut) return;
    const r = await api("GET", config.urls.next);
    if (r.ok) {
      state.loggedOut = false;
      recovered();
      merge(r.body, false);
      pump();
    } else {
      state.loginTimer = setTimeout(checkLogin, 5000);
    }
  }
  window.addEventListener("focus", () => {
    if (state.loggedOut) checkLogin();
  });

  // Sends the outbox in order; an entry leaves it only once the server has answered it for good.
  async function pump() {
    if (state.sending || state.loggedOut) return;
    state.sending = true;
    while (state.outbox.length) {
      const entry = state.outbox[0];
      const r = await api("POST", config.urls.assignment + entry.id + "/" + entry.kind, entry.body);
      if (r.network) {
        state.sending = false;
        failed("send");
        return;
      }
      if (isLoggedOut(r)) {
        state.sending = false;
        loggedOut();
        return;
      }
      recovered();
      state.outbox.shift();
      if (r.ok) {
        if (entry.kind === "submit" && r.status === 201) {
          state.serverToday += 1;
          state.ackSeq += 1;
        }
      } else {
        const code = errorCode(r);
        const text = CODE_TEXT[code] || "Image #" + entry.assignment.image.id + ": " + errorMessage(r);
        notice(text, "warn");
        if (code === "reservation_expired") root.dataset.expired = String(entry.id);
      }
      render();
      if (state.held.length < 2) refresh();
    }
    state.sending = false;
    state.drainWaiters.splice(0).forEach((resolve) => resolve());
    render();
  }

  function drained() {
    if (!state.outbox.length) return Promise.resolve();
    return new Promise((resolve) => state.drainWaiters.push(resolve));
  }

  // Tops up `held` from queue/next; at most one request in flight, a second call re-fetches after it.
  async function refresh() {
    if (state.loggedOut) return;
    if (state.fetching) {
      state.refetch = true;
      return;
    }
    state.fetching = true;
    clearTimeout(state.pollTimer);
    const seq = state.ackSeq;
    const r = await api("GET", config.urls.next);
    state.fetching = false;
    if (r.network) {
      failed("next");
    } else if (isLoggedOut(r)) {
      loggedOut();
    } else if (r.ok) {
      recovered();
      state.refused = null;
      merge(r.body, seq === state.ackSeq);
    } else {
      // 403/404: no access to this project any more, or it is gone. Said in the stage, not as a
      // passing notice over a "Loading…" that would never end; asked again every 30 s.
      state.refused = errorMessage(r);
      clearTimeout(state.pollTimer);
      state.pollTimer = setTimeout(refresh, 30000);
      render();
    }
    if (state.refetch) {
      state.refetch = false;
      refresh();
    }
  }

  function merge(body, progressIsCurrent) {
    // Reservations the server no longer lists were taken back (the budget lowered below them, their
    // label imported, or they lapsed): they leave the page instead of being labelled and refused.
    const live = new Set([body.assignment, body.upcoming].filter(Boolean).map((a) => a.id));
    state.held = state.held.filter((h) => live.has(h.id));
    for (const a of [body.assignment, body.upcoming]) {
      if (!a || state.done.has(a.id)) continue;
      const known = state.held.find((h) => h.id === a.id);
      if (known) known.expires_at = a.expires_at; // renewed after lapsing
      else state.held.push(a);
    }
    state.emptyReason = body.empty_reason;
    const p = body.progress;
    // A progress figure counted before my latest acknowledged label would step the counter back.
    state.serverToday = progressIsCurrent ? p.labelled_today : Math.max(state.serverToday, p.labelled_today);
    state.left = p.left_in_queue;
    state.leftMore = p.left_in_queue_more;
    show();
    if (!state.held.length) {
      // Nothing to label: look again later (a retrain or an admin may bring more).
      const wait = state.emptyReason === "budget_exhausted" ? 30000 : 5000;
      state.pollTimer = setTimeout(refresh, wait);
    } else if (!document.hidden && Date.now() - state.activeAt < IDLE_MS) {
      // While labelling: check now and then that what is held is still held (see above). Not on an
      // idle or hidden page: each check also renews its reservations, and a page left open would
      // hold its images from everyone; the next answer or key checks again.
      state.pollTimer = setTimeout(refresh, config.checkSeconds * 1000);
    }
  }

  // --- what is on screen -------------------------------------------------------------------------

  function current() {
    return state.held[0] || null;
  }

  function show() {
    const a = current();
    if (a && a.id !== state.shownId) {
      state.shownId = a.id;
      state.shownAt = 0; // keys wait until the image has appeared
      root.dataset.assignment = "";
      img.classList.add("switching");
      img.dataset.for = String(a.id);
      img.hidden = false;
      img.src = a.image.url;
      img.alt = "Image #" + a.image.id + " to label"; // a screen reader says a new image came
      $("meta").textContent = "Image #" + a.image.id + " · " + a.image.width + "×" + a.image.height + " px";
      showSuggestion(a.suggestion);
    } else if (!a) {
      state.shownId = null;
      state.shownAt = 0;
      root.dataset.assignment = "";
      img.hidden = true;
      img.removeAttribute("src");
      $("meta").textContent = "";
      showSuggestion(null);
    }
    const next = state.held[1];
    if (next && (!state.preload || state.preload.dataset.for !== String(next.id))) {
      state.preload = new Image();
      state.preload.dataset.for = String(next.id);
      state.preload.src = next.image.url;
    }
    render();
  }

  img.addEventListener("load", () => {
    const a = current();
    if (!a || img.dataset.for !== String(a.id)) return;
    fit();
    img.classList.remove("switching");
    state.shownAt = performance.now();
    root.dataset.assignment = String(a.id);
    root.dataset.image = String(a.image.id);
    render();
  });

  img.addEventListener("error", () => {
    const a = current();
    if (!a || img.dataset.for !== String(a.id)) return;
    // Still answerable: the annotator can flag it as broken or skip it.
    img.classList.remove("switching");
    state.shownAt = performance.now();
    root.dataset.assignment = String(a.id);
    notice("This image did not load. Press F to flag it as broken, or S to skip it.", "warn");
  });

  // Integer upscaling with pixelated rendering keeps tiny images (28×28) crisp; big ones shrink smoothly.
  function fit() {
    const w = img.naturalWidth;
    const h = img.naturalHeight;
    if (!w || !h) return;
    const box = stage.getBoundingClientRect();
    const scale = Math.min((box.width - 24) / w, (box.height - 24) / h);
    const crisp = scale >= 2;
    const s = crisp ? Math.floor(scale) : Math.min(scale, 1);
    img.style.width = Math.round(w * s) + "px";
    img.style.height = Math.round(h * s) + "px";
    img.classList.toggle("pixelated", crisp);
  }
  window.addEventListener("resize", fit);

  function showSuggestion(suggestion) {
    document.querySelectorAll("#labels button").forEach((b) => b.classList.remove("suggested"));
    const label = suggestion && labelById.get(suggestion.label);
    // No suggestion (an audit image): its space is kept, so the label buttons stay where they were
    // under a finger (they moved a row between images on a phone).
    $("suggestion").hidden = false;
    $("suggestion").style.visibility = label ? "" : "hidden";
    if (!label) return;
    $("suggestion-label").textContent = label.name;
    $("suggestion-conf").textContent =
      suggestion.confidence == null ? "" : Math.round(suggestion.confidence * 100) + "%";
    const button = document.querySelector('#labels button[data-label="' + label.id + '"]');
    if (button) button.classList.add("suggested");
  }

  function notice(text, kind) {
    state.notice = { text, kind };
    clearTimeout(state.noticeTimer);
    state.noticeTimer = setTimeout(() => {
      state.notice = null;
      render();
    }, 6000);
    render();
  }

  function render() {
    const a = current();
    let view;
    if (state.loggedOut) view = "logged-out";
    else if (a) view = "labelling";
    else if (state.failure) view = "error";
    else if (state.refused) view = "refused";
    else if (state.emptyReason && !state.fetching && !state.outbox.length) view = "empty";
    else view = "loading";
    root.dataset.state = view;
    root.dataset.pending = String(state.outbox.length);
    root.dataset.held = String(state.held.length);
    root.dataset.emptyReason = view === "empty" ? state.emptyReason : "";

    const text = {
      "logged-out": "You are logged out. Log in again to go on; answers not yet sent are kept on this page.",
      error: "Cannot reach the server.",
      refused: "The server refused to hand out images: " + state.refused,
      empty: EMPTY_TEXT[state.emptyReason] || "Nothing to label right now.",
      loading: state.busy === "undo" ? "Taking back your last label…" : "Loading…",
      labelling: "",
    }[view];
    $("stage-text").textContent = text;
    $("stage-msg").hidden = view === "labelling";
    $("stage-retry").hidden = view !== "error";
    $("stage-login").hidden = view !== "logged-out";

    const pendingSubmits = state.outbox.filter((e) => e.kind === "submit").length;
    $("p-today").textContent = String(state.serverToday + pendingSubmits);
    $("p-left").textContent = state.left == null ? "–" : state.left + (state.leftMore ? "+" : "");
    const pending = $("p-pending");
    pending.hidden = !state.outbox.length;
    pending.textContent = state.outbox.length + " not yet saved";

    const banner = $("banner");
    let bannerText = "";
    let bannerKind = "";
    if (state.failure) {
      const secs = Math.max(0, Math.ceil((state.retryAt - Date.now()) / 1000));
      bannerText =
        "Connection problem: " +
        (state.outbox.length ? state.outbox.length + " answer(s) kept here, not yet saved. " : "") +
        "Retrying in " + secs + " s.";
      bannerKind = "error";
    } else if (state.busy === "undo") {
      bannerText = "Taking back your last label…";
      bannerKind = "info";
    } else if (state.notice) {
      bannerText = state.notice.text;
      bannerKind = state.notice.kind;
    }
    banner.hidden = !bannerText;
    banner.className = "banner " + bannerKind;
    $("banner-text").textContent = bannerText;
    $("banner-retry").hidden = !state.failure;

    const ready = view === "labelling" && state.shownAt > 0 && !state.busy;
    document.querySelectorAll("#labels button, #btn-skip, #btn-flag").forEach((b) => (b.disabled = !ready));
    $("btn-undo").disabled = !!state.busy || state.loggedOut;
  }
  setInterval(() => {
    if (state.failure) render(); // the retry countdown
    expireHeld();
  }, 1000);

  // --- answering ---------------------------------------------------------------------------------

  function canAnswer() {
    return current() && state.shownAt > 0 && !state.busy && !state.loggedOut;
  }

  function answer(kind, body) {
    const a = current();
    state.done.add(a.id);
    state.outbox.push({ kind, id: a.id, body, assignment: a });
    state.held.shift();
    show();
    pump();
  }

  function chooseLabel(label) {
    if (!canAnswer()) return;
    const seconds = Math.round((performance.now() - state.shownAt) / 100) / 10;
    const button = document.querySelector('#labels button[data-label="' + label.id + '"]');
    if (button) {
      button.classList.add("chosen");
      setTimeout(() => button.classList.remove("chosen"), 180);
    }
    answer("submit", { label: label.id, seconds_spent: seconds });
  }

  function acceptSuggestion() {
    const a = current();
    if (!a || !a.suggestion) return;
    const label = labelById.get(a.suggestion.label);
    if (label) chooseLabel(label);
  }

  function skip() {
    if (!canAnswer()) return;
    const dialog = $("dlg-skip");
    const input = $("skip-reason");
    input.value = "";
    dialog.returnValue = "";
    dialog.showModal();
    // A touch screen's keyboard would cover half the page: there the reasons are buttons to tap.
    if (window.matchMedia("(pointer: fine)").matches) input.focus();
  }

  document.querySelectorAll("#dlg-skip [data-reason]").forEach((button) =>
    button.addEventListener("click", () => {
      $("skip-reason").value = button.dataset.reason;
      closeDialog($("dlg-skip"), "skip");
    }),
  );

  // A key that closes a window is used up here: by the time it bubbles to the page-wide handler
  // no window is open any more, and `1`-`3` would be taken for label hotkeys.
  $("skip-reason").addEventListener("keydown", (e) => {
    const presets = { 1: "not sure which label", 2: "cannot see it well" };
    if (!e.target.value && presets[e.key]) {
      e.preventDefault();
      e.stopPropagation();
      e.target.value = presets[e.key];
      closeDialog($("dlg-skip"), "skip");
    } else if (e.key === "Enter") {
      e.preventDefault();
      e.stopPropagation();
      closeDialog($("dlg-skip"), "skip");
    }
  });

  $("dlg-skip").addEventListener("close", () => {
    if ($("dlg-skip").returnValue !== "skip" || !canAnswer()) return;
    answer("skip", { reason: $("skip-reason").value.trim() || "no reason given" });
  });

  function flag() {
    if (!canAnswer()) return;
    $("dlg-flag").returnValue = "";
    $("dlg-flag").showModal();
  }

  $("dlg-flag").addEventListener("keydown", (e) => {
    const reasons = { 1: "broken", 2: "ambiguous", 3: "other" };
    if (reasons[e.key]) {
      e.preventDefault();
      e.stopPropagation(); // see the skip window
      closeDialog($("dlg-flag"), reasons[e.key]);
    }
  });

  $("dlg-flag").addEventListener("close", () => {
    const reason = $("dlg-flag").returnValue;
    if (!["broken", "ambiguous", "other"].includes(reason) || !canAnswer()) return;
    answer("flag", { reason });
  });

  async function undo() {
    if (state.busy || state.loggedOut) return;
    state.busy = "undo";
    render();
    // The server takes back my last *stored* label, so everything answered before must be stored first.
    await drained();
    const r = await api("POST", config.urls.undo);
    state.busy = null;
    if (r.network) {
      notice("Could not undo: the server cannot be reached. Try again in a moment.", "error");
    } else if (isLoggedOut(r)) {
      loggedOut();
    } else if (r.ok) {
      const a = r.body;
      state.done.delete(a.id);
      state.held = [a, ...state.held.filter((h) => h.id !== a.id)];
      state.serverToday = Math.max(0, state.serverToday - 1);
      state.ackSeq += 1;
      notice("Took back your last label (image #" + a.image.id + "). Label it again.", "info");
      show();
    } else {
      notice(errorCode(r) === "nothing_to_undo" ? "Nothing to undo." : errorMessage(r), "warn");
    }
    render();
  }

  // A reservation that lapsed on screen goes back to the queue: say so, then show the next item.
  function expireHeld() {
    const now = Date.now() + state.skewMs;
    const before = state.held.length;
    const first = current();
    state.held = state.held.filter((a) => Date.parse(a.expires_at) > now);
    if (state.held.length === before) return;
    if (first && current() !== first) {
      root.dataset.expired = String(first.id);
      notice("Your reservation of image #" + first.image.id + " expired, so it went back to the queue. Here is the next one.", "warn");
    }
    show();
    refresh();
  }

  function toggleDialog(id) {
    const dialog = $(id);
    if (dialog.open) closeDialog(dialog);
    else dialog.showModal();
  }

  // A closed window keeps the focus on its own, now hidden, button until the browser's next
  // rendering step, and a key pressed in between (Enter right after Esc) would go to that button
  // and be lost. So the focus is let go of as a window closes, however it closes.
  function releaseFocus(dialog) {
    if (dialog.contains(document.activeElement)) document.activeElement.blur();
  }

  function closeDialog(dialog, value) {
    releaseFocus(dialog);
    dialog.close(value);
  }

  document.querySelectorAll("dialog").forEach((dialog) => {
    dialog.addEventListener("keydown", (e) => {
      if (e.key === "Escape") releaseFocus(dialog);
    });
    dialog.addEventListener("cancel", () => releaseFocus(dialog));
    dialog.addEventListener("submit", () => releaseFocus(dialog)); // its buttons (form method="dialog")
  });

  // --- keys and buttons --------------------------------------------------------------------------

  const COMMANDS = {
    s: skip,
    u: undo,
    f: flag,
    i: () => toggleDialog("dlg-instructions"),
  };

  for (const type of ["keydown", "pointerdown"]) {
    document.addEventListener(
      type,
      () => {
        const idle = Date.now() - state.activeAt >= IDLE_MS;
        state.activeAt = Date.now();
        if (idle && state.held.length && !state.fetching) refresh(); // back: check the holds at once
      },
      { capture: true },
    );
  }
  document.addEventListener("keydown", (e) => {
    const open = document.querySelector("dialog[open]");
    if (open) {
      // Help and instructions close with the key that opened them, too.
      if ((open.id === "dlg-help" && e.key === "?") || (open.id === "dlg-instructions" && e.key.toLowerCase() === "i")) {
        e.preventDefault();
        closeDialog(open);
      }
      return;
    }
    // A key typed in a window that it just closed belongs to the window, not to the page.
    if (e.target.closest("dialog")) return;
    if (e.target.matches("input, textarea, select") || e.altKey || e.metaKey || e.repeat) return;
    // A focused button answers Enter and Space itself (keyboard users may Tab to one).
    if (e.target.matches("button, a") && (e.key === "Enter" || e.key === " ")) return;
    const key = e.key.length === 1 ? e.key.toLowerCase() : e.key;
    if (e.ctrlKey) {
      if (key === "z") {
        e.preventDefault();
        undo();
      }
      return;
    }
    if (key === "?") {
      e.preventDefault();
      toggleDialog("dlg-help");
    } else if (key === "Enter") {
      e.preventDefault();
      acceptSuggestion();
    } else if (labelByKey.has(key) && !(e.shiftKey && COMMANDS[key])) {
      // Label hotkeys win over command letters; Shift+letter is always the command. A label key
      // typed with Shift is still the label otherwise (digits need Shift on AZERTY keyboards).
      e.preventDefault();
      chooseLabel(labelByKey.get(key));
    } else if (COMMANDS[key]) {
      e.preventDefault();
      COMMANDS[key]();
    }
  });

  $("labels").addEventListener("click", (e) => {
    const button = e.target.closest("button[data-label]");
    if (!button) return;
    // First, even for a click ignored below: Enter afterwards accepts the suggestion instead of
    // pressing this button again (the click's mousedown gave it the focus).
    button.blur();
    // The next image is loaded ahead and shows within milliseconds: the second click of a
    // double-click would label it unseen. Nobody judges an image in a quarter of a second.
    if (e.detail > 1 || performance.now() - state.shownAt < 250) return;
    chooseLabel(labelById.get(Number(button.dataset.label)));
  });
  // Buttons let go of the focus when clicked: a window closed with Esc gives the focus back to what
  // had it, and Enter would then press the button again instead of accepting the suggestion.
  $("btn-skip").addEventListener("click", (e) => {
    e.currentTarget.blur();
    skip();
  });
  $("btn-flag").addEventListener("click", (e) => {
    e.currentTarget.blur();
    flag();
  });
  $("btn-undo").addEventListener("click", (e) => {
    e.currentTarget.blur();
    undo();
  });
  $("btn-help").addEventListener("click", (e) => {
    e.currentTarget.blur();
    toggleDialog("dlg-help");
  });
  $("btn-instructions").addEventListener("click", (e) => {
    e.currentTarget.blur();
    toggleDialog("dlg-instructions");
  });
  $("banner-retry").addEventListener("click", retryNow);
  $("stage-retry").addEventListener("click", retryNow);

  window.addEventListener("beforeunload", (e) => {
    if (state.outbox.length) {
      e.preventDefault();
      e.returnValue = "";
    }
  });

  render();
  refresh();
})();
