// Live progress for unfinished jobs in a table: poll the job API until each finishes.
(function () {
  const FINISHED = ["succeeded", "failed", "cancelled"];
  // A finished job reloads the page for its results, but not under someone typing or choosing in a
  // form (the reload wiped half-typed input: a review): then a note offers the reload instead.
  let edited = false;
  document.addEventListener("input", function () { edited = true; });
  document.addEventListener("submit", function () { edited = false; });
  const refresh = function () {
    if (!edited) { location.reload(); return; }
    if (document.getElementById("jobs-done")) return;
    const note = document.createElement("p");
    note.id = "jobs-done";
    note.className = "pill ok";
    note.textContent = "A job finished: reload the page for its results. ";
    const link = document.createElement("a");
    link.href = location.href;
    link.textContent = "Reload";
    note.appendChild(link);
    document.querySelector("table.jobs").before(note);
  };
  document.querySelectorAll("tr.job").forEach(function (row) {
    if (FINISHED.includes(row.dataset.state)) return;
    const tick = function () {
      fetch("/api/jobs/" + row.dataset.job, {credentials: "same-origin"})
        .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
        .then(function (job) {
          row.querySelector(".state").textContent = job.state;
          row.querySelector(".fill").style.width = Math.round(job.progress * 100) + "%";
          row.querySelector(".message").textContent = job.message + (job.error ? " — " + job.error.split("\n")[0] : "");
          if (FINISHED.includes(job.state)) { if (job.state === "succeeded") setTimeout(refresh, 800); return; }
          setTimeout(tick, 1000);
        })
        .catch(function () { setTimeout(tick, 3000); });
    };
    setTimeout(tick, 1000);
  });
})();
