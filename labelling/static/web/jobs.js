// Live progress for unfinished jobs in a table: poll the job API until each finishes.
(function () {
  const FINISHED = ["succeeded", "failed", "cancelled"];
  document.querySelectorAll("tr.job").forEach(function (row) {
    if (FINISHED.includes(row.dataset.state)) return;
    const tick = function () {
      fetch("/api/jobs/" + row.dataset.job, {credentials: "same-origin"})
        .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
        .then(function (job) {
          row.querySelector(".state").textContent = job.state;
          row.querySelector(".fill").style.width = Math.round(job.progress * 100) + "%";
          row.querySelector(".message").textContent = job.message + (job.error ? " — " + job.error.split("\n")[0] : "");
          if (FINISHED.includes(job.state)) { if (job.state === "succeeded") setTimeout(function () { location.reload(); }, 800); return; }
          setTimeout(tick, 1000);
        })
        .catch(function () { setTimeout(tick, 3000); });
    };
    setTimeout(tick, 1000);
  });
})();
