// The Review page's keys: a label's hotkey decides the first image on the page (clicks its button).
document.addEventListener("keydown", function (event) {
  if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
  if (event.target.closest("input, textarea, select")) return;
  const first = document.querySelector("article.review-card");
  if (!first) return;
  const button = first.querySelector('button[data-hotkey="' + CSS.escape(event.key.toLowerCase()) + '"]');
  if (button) {
    event.preventDefault();
    button.click();
  }
});
