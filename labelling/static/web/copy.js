// A button with data-copy="ID" copies the value of the input with that id, and says so.
document.querySelectorAll("button[data-copy]").forEach(function (button) {
  button.addEventListener("click", function () {
    const input = document.getElementById(button.dataset.copy);
    input.focus();
    input.select();
    let copied = false;
    try { copied = document.execCommand("copy"); } catch (e) { copied = false; }
    if (copied) { button.textContent = "Copied"; return; }
    const manual = function () { button.textContent = "Press Ctrl+C"; };  // the text is selected
    if (navigator.clipboard) {
      navigator.clipboard.writeText(input.value).then(function () { button.textContent = "Copied"; }, manual);
    } else {
      manual();
    }
  });
});
