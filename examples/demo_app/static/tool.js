/* The rewriter: ask for a one-time grant (Wattfare's button script), then send texts with its token to our server. */
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("demo-config").textContent);
  var panel = document.getElementById("grant");
  var grantText = document.getElementById("grant-text");
  var allowButton = document.getElementById("allow");
  var form = document.getElementById("rewrite");
  var input = document.getElementById("text");
  var rewriteButton = form.querySelector("button[type=submit]");
  var answer = document.getElementById("answer");
  var grant = null; // { grantToken, expiresAt }: kept in this page only, sent with each text

  // A grant-only page needs no session route: requestGrant() is all it calls.
  var wattfare = Wattfare.createWattfare({ publishableKey: config.publishableKey, baseURL: config.wattfareUrl });

  var WORDS = {
    grant_denied: "You denied the grant, so nothing can be rewritten. Allow requests whenever you like.",
    popup_closed: "You closed the Wattfare window before deciding, so no requests were allowed.",
    popup_blocked: "Your browser blocked the Wattfare window: allow pop-ups for this site and try again.",
    timeout: "No decision was made in the Wattfare window, so no requests were allowed.",
  };

  function show(state, message) {
    panel.dataset.state = state;
    grantText.textContent = message;
    rewriteButton.disabled = state !== "active";
    allowButton.hidden = state === "active";
  }

  function left(count) {
    return count + " request" + (count === 1 ? "" : "s") + " left";
  }

  allowButton.addEventListener("click", function () {
    // Called straight from the click, so the browser lets Wattfare's popup open (live keys).
    wattfare.requestGrant({ requests: 3, maxUsd: 0.05 }).then(
      function (granted) {
        grant = granted;
        show("active", "Allowed · " + left(3) + (config.live ? "" : " (test mode)"));
      },
      function (error) {
        show("none", WORDS[error && error.code] || "Wattfare could not grant the requests. Try again in a moment.");
      }
    );
  });

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value.trim();
    if (!text || !grant) return;
    form.dataset.sending = "true"; // until the answer or the refusal is shown: tests wait on it too
    fetch("/api/rewrite", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ text: text, grantToken: grant.grantToken }),
    })
      .then(function (response) {
        return response.json();
      })
      .then(function (body) {
        if (body.error) {
          answer.textContent = "";
          if (body.error.code === "grant_invalid") {
            grant = null;
            show("ended", "Your grant has ended: " + body.error.message + " Allow more requests to continue.");
            panel.dataset.code = "grant_invalid";
          } else {
            answer.textContent = "The rewrite failed. Try again in a moment.";
          }
          return;
        }
        answer.textContent = body.text;
        answer.dataset.done = String(Number(answer.dataset.done || 0) + 1);
        show("active", "Allowed · " + left(body.requestsLeft) + (config.live ? "" : " (test mode)"));
      })
      .catch(function () {
        answer.textContent = "The demo server could not be reached.";
      })
      .then(function () {
        delete form.dataset.sending;
      });
  });
})();
