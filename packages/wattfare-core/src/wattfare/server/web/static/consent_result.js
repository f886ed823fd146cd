/* The consent popup's last page: report the result to the app that opened it, then close.
 * The message goes only to the app's registered origins: postMessage delivers it only when the opener's
 * origin is exactly the target origin, so no other site can read it. */
(function () {
  "use strict";
  var element = document.getElementById("wattfare-result");
  if (!element) return;
  var result = JSON.parse(element.textContent);
  var opener = window.opener;
  if (opener && !opener.closed) {
    result.origins.forEach(function (origin) {
      try {
        opener.postMessage(result.message, origin);
      } catch (error) {
        /* an origin the browser cannot parse: skip it */
      }
    });
  }
  setTimeout(function () {
    window.close();
  }, 150);
})();
