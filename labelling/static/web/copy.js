// A button with data-copy="ID" copies the value of the input with that id, and says so.
document.querySelectorAll("button[data-copy]").forEach(function (button) {
  button.addEventListener("click", function () {
    const input = document.getElementById(button.dataset.copy);
    input.select();
    const done = function () { button.textContent = "Copied"; };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(input.value).then(done, function () { document.execCommand("copy"); done(); });
    } else {
      document.execCommand("copy");  // plain-HTTP pages have no clipboard API
      done();
    }
  });
});
