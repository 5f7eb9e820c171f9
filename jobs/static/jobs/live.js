// Pages with [data-live="N"] elements refresh them every N seconds from the same address, while
// the tab is visible; a failed refresh keeps what is shown and tries again next time.
(function () {
  const live = document.querySelectorAll("[data-live]");
  if (!live.length) return;
  const seconds = Number(live[0].dataset.live) || 5;
  async function refresh() {
    if (document.hidden) return;
    try {
      const response = await fetch(window.location.href, {credentials: "same-origin", headers: {"X-Requested-With": "live"}});
      if (!response.ok) return;
      const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
      for (const element of document.querySelectorAll("[data-live]")) {
        const replacement = fresh.getElementById(element.id);
        if (replacement) element.replaceWith(replacement);
      }
    } catch (error) { /* offline for a moment: the next tick tries again */ }
  }
  setInterval(refresh, seconds * 1000);
  document.addEventListener("visibilitychange", () => { if (!document.hidden) refresh(); });
})();
