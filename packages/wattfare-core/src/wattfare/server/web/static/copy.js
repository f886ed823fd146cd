/* Copy buttons beside keys: `<button data-copy="ID">` copies the text of the element with that id and says
 * "Copied" for a moment. Without scripts the buttons stay hidden and the key stays selectable (one click
 * selects all of it: `user-select: all`). */
(function () {
  "use strict";
  function copied(button) {
    button.textContent = "Copied";
    button.dataset.copied = "true";
    setTimeout(function () {
      button.textContent = "Copy";
      delete button.dataset.copied;
    }, 2000);
  }
  function fallback(target) {
    var range = document.createRange();
    range.selectNodeContents(target);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    return document.execCommand && document.execCommand("copy");
  }
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    var target = document.getElementById(button.dataset.copy);
    if (!target) return;
    button.hidden = false;
    button.addEventListener("click", function () {
      var text = target.textContent.trim();
      var done = function () {
        copied(button);
      };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(done, function () {
          if (fallback(target)) done();
        });
      } else if (fallback(target)) {
        done();
      }
    });
  });
})();
