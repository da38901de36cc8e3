// Progressive enhancement only: every form works without this file.
// A form with data-busy shows its progress note and disables its button while the
// server works (a revocation that waits for every node to acknowledge it).
"use strict";
document.addEventListener("submit", function (event) {
  var form = event.target;
  if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-busy")) return;
  form.classList.add("busy");
  var button = form.querySelector("button[type=submit]");
  if (button) {
    button.disabled = true;
    button.textContent = form.getAttribute("data-busy");
  }
});
