// Copy buttons on the admin pages (for a login link). Without JavaScript the buttons stay
// hidden and the link can still be selected and copied by hand.
"use strict";

document.querySelectorAll("button[data-copy]").forEach((button) => {
  const field = document.getElementById(button.dataset.copy);
  if (!field) return;
  const status = button.parentElement.querySelector("[data-copy-status]");
  const say = (text) => {
    if (status) status.textContent = text;
  };
  field.addEventListener("focus", () => field.select());
  button.hidden = false;
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(field.value);
      say("Copied.");
    } catch {
      // The clipboard API exists only in secure contexts (https, localhost): fall back to
      // selecting the text and the older copy command.
      field.focus();
      field.select();
      say(document.execCommand("copy") ? "Copied." : "Press Ctrl+C (or ⌘C) to copy the selected link.");
    }
  });
});
