// Follow a job until it ends: status, progress bar, result or error, timings. A failed poll (a
// restarting server, a dropped connection) is retried with backoff, and the page says so.
(function () {
  const script = document.currentScript;
  const url = script.dataset.url;
  const connection = document.getElementById("connection");
  let delay = 1000;

  // As the page's template writes a time (jobs_display.when): 2026-12-06 08:35:12, in the site's zone.
  function when(iso) {
    if (!iso) return "";
    const element = document.createElement("time");
    element.dateTime = iso;
    element.textContent = iso.replace("T", " ").slice(0, 19);
    return element;
  }

  function showTime(id, iso) {
    document.getElementById(id).replaceChildren(when(iso));
  }

  function show(job) {
    const status = document.getElementById("status");
    status.textContent = job.status;
    status.className = "status " + job.status;
    const bar = document.getElementById("progress");
    if (job.progress.percent !== null) bar.value = job.progress.percent;
    document.getElementById("progress-text").textContent = job.progress.total
      ? `${job.progress.current} / ${job.progress.total} ${job.progress.message}` : "";
    document.getElementById("result").textContent = job.result === null ? "" : JSON.stringify(job.result, null, 2);
    document.getElementById("error").textContent = job.error || "";
    document.getElementById("waiting").textContent = job.waiting || "";
    showTime("started", job.started_at);
    showTime("done", job.done_at);
    document.getElementById("worker").textContent = job.worker || "";
  }

  function poll() {
    fetch(url, {credentials: "same-origin", headers: {Accept: "application/json"}})
      .then(response => {
        if (!response.ok) throw new Error(`the server answered ${response.status}`);
        return response.json();
      })
      .then(job => {
        connection.textContent = "";
        delay = 1000;
        show(job);
        if (job.done_at) {
          const cancel = document.getElementById("cancel");
          if (cancel) cancel.remove();
        } else {
          setTimeout(poll, delay);
        }
      })
      .catch(error => {
        delay = Math.min(delay * 2, 30000);
        connection.textContent = `Lost contact (${error.message}); reconnecting in ${delay / 1000} s…`;
        setTimeout(poll, delay);
      });
  }
  poll();
})();
