/* The demo's page: the Connect button (Wattfare's button script) and a chat that streams from our server. */
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("demo-config").textContent);
  var budget = document.getElementById("budget");
  var budgetText = document.getElementById("budget-text");
  var connectButton = document.getElementById("connect");
  var disconnectButton = document.getElementById("disconnect");
  var manageLink = document.getElementById("manage");
  var messages = document.getElementById("messages");
  var form = document.getElementById("chat");
  var input = document.getElementById("message");
  var history = [];

  var wattfare = Wattfare.createWattfare({
    publishableKey: config.publishableKey,
    baseURL: config.wattfareUrl,
    session: "/api/ai-session", // our route that mints a Wattfare session for the signed-in user
  });

  function money(value) {
    if (value === null || value === undefined) return "no limit";
    var amount = Number(value);
    return "$" + (amount > 0 && amount < 0.01 ? amount.toFixed(6) : amount.toFixed(2));
  }

  function dateText(iso) {
    // "1 January 2027": budgets reset at midnight UTC on the first of the month.
    return new Date(iso).toLocaleDateString("en-GB", { day: "numeric", month: "long", year: "numeric", timeZone: "UTC" });
  }

  // Each state the visitor can be in: what the panel says, and what they can do about it (a button or a link).
  var CONNECTABLE = { "not-connected": "Connect AI budget", declined: "Connect AI budget", revoked: "Reconnect AI budget" };

  function show(state, message, link) {
    budget.dataset.state = state;
    budgetText.textContent = message;
    connectButton.hidden = !CONNECTABLE[state];
    connectButton.textContent = CONNECTABLE[state] || "Connect AI budget";
    disconnectButton.hidden = state !== "connected";
    manageLink.hidden = !link;
    if (link) manageLink.textContent = link;
  }

  function showCapReached(resetsAt) {
    var resets = resetsAt ? " It resets on " + dateText(resetsAt) + "." : "";
    show("budget-exceeded", "You have used the whole monthly cap you set for this app." + resets, "Raise your cap");
  }

  function showStatus(status, justAsked) {
    if (status && status.connected) {
      var left = Number(status.remainingUsd);
      if (status.remainingUsd !== null && status.remainingUsd !== undefined && left <= 0) {
        showCapReached(status.resetsAt);
        return;
      }
      // Wattfare.budgetText: "$4.20 left", and "· $0.30 in use" while this visitor's replies are running.
      var cap = status.limits.monthlyUsd;
      var capped = cap === null || cap === undefined ? "" : "Your " + money(cap) + " monthly cap: ";
      show(
        "connected",
        "Connected · " + capped + Wattfare.budgetText(status) + (config.live ? "" : " (test mode)"),
        "Manage your budget"
      );
    } else if (status && status.state === "revoked") {
      show("revoked", "Access to your AI budget was turned off for this app. Reconnect it to chat again.");
    } else if (justAsked) {
      // The visitor pressed Deny in Wattfare's window.
      show("declined", "You declined, so this app cannot use your AI budget. You can connect it whenever you like.");
    } else {
      show("not-connected", "Connect your AI budget to start chatting.");
    }
  }

  var POPUP_WORDS = {
    popup_closed: "You closed the Wattfare window before deciding, so nothing was connected.",
    popup_blocked: "Your browser blocked the Wattfare window: allow pop-ups for this site and press Connect again.",
    timeout: "No decision was made in the Wattfare window, so nothing was connected.",
  };

  function showError(error) {
    var code = error && error.code;
    if (code === "not_connected") {
      // Never connected, or revoked since: the status says which.
      wattfare.status().then(function (status) {
        if (status && status.state === "revoked") {
          showStatus(status, false);
        } else {
          show("not-connected", "Connect your AI budget to send your message: it is kept in the box below.");
        }
      }, showError);
    } else if (code === "budget_exceeded") {
      showCapReached(error.resetsAt);
    } else if (code === "funding_invalid") {
      show(
        "funding-invalid",
        "Your Wattfare budget has nothing to pay this reply with yet. Add credits or link a provider in Wattfare, then send again.",
        "Add funding in Wattfare"
      );
    } else if (code === "budget_busy") {
      // Not a spent cap: this visitor's other replies hold the budget for a moment. The budget stays connected.
      refresh();
    } else if (POPUP_WORDS[code]) {
      show("not-connected", POPUP_WORDS[code]);
    } else {
      show("error", "Something went wrong on the way to your AI budget. Try again in a moment.");
    }
  }

  var refreshes = 0;
  function refresh() {
    // Only the latest status is shown: one asked for as a reply starts may come back after the one asked at its end.
    var mine = ++refreshes;
    return wattfare.status().then(
      function (status) {
        if (mine === refreshes) showStatus(status);
      },
      function (error) {
        if (mine === refreshes) showError(error);
      }
    );
  }

  function bubble(role, text, after) {
    var item = document.createElement("li");
    item.className = role;
    item.dataset.test = role;
    item.textContent = text;
    if (after) {
      after.insertAdjacentElement("afterend", item);
    } else {
      messages.appendChild(item);
    }
    return item;
  }

  var BUSY = "Your other replies are still using your AI budget. Try again in a moment.";
  var SHORTENED = "Answer shortened: your cap for this app is nearly used";

  // Errors that are a state of the budget, shown in the budget panel: the message is not lost, it goes back in the box.
  var BUDGET_STATES = { not_connected: true, budget_exceeded: true, funding_invalid: true };

  connectButton.addEventListener("click", function () {
    // Called straight from the click, so the browser lets Wattfare's consent popup open.
    wattfare.connect().then(function (status) {
      showStatus(status, true);
    }, showError);
  });
  disconnectButton.addEventListener("click", function () {
    wattfare.disconnect().then(function () {
      show("not-connected", "Disconnected: this app can no longer use your AI budget. Connect it again whenever you like.");
    }, showError);
  });

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value.trim();
    if (!text) return;
    input.value = "";
    var question = bubble("user", text);
    form.dataset.sending = "true"; // until the reply ended (done, refused or failed): tests wait on it too
    history.push({ role: "user", content: text });
    var answer = bubble("assistant", "");
    var reply = "";
    fetch("/api/chat", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ messages: history }),
    })
      .then(function (response) {
        var reader = response.body.getReader();
        var decoder = new TextDecoder();
        var pending = "";
        function handle(line) {
          if (!line) return;
          var event = JSON.parse(line);
          if (event.text !== undefined) {
            if (!reply) refresh(); // the reply now holds part of the budget: show it as in use
            reply += event.text;
            answer.textContent = reply;
          } else if (event.done) {
            answer.dataset.done = "true";
            if (event.clamped) {
              // Wattfare gave this reply fewer tokens because the cap is nearly used: say so, never cut silently.
              answer.dataset.clamped = "true";
              bubble("note", SHORTENED, answer).dataset.test = "clamped";
            }
            history.push({ role: "assistant", content: reply });
            refresh();
          } else if (event.error) {
            var code = event.error.code;
            if (!reply) answer.remove();
            if (code === "budget_busy") {
              bubble("note", BUSY);
            } else if (BUDGET_STATES[code] && !reply) {
              // Nothing was sent to a model: take the message back, so it can be sent once the budget allows.
              question.remove();
              history.pop();
              if (!input.value) input.value = text;
            } else if (BUDGET_STATES[code]) {
              history.push({ role: "assistant", content: reply });
              bubble("note", "Reply stopped: see your AI budget above.", answer);
            } else {
              bubble("note", "The reply failed. Try again in a moment.");
            }
            showError(event.error);
          }
        }
        function pump() {
          return reader.read().then(function (chunk) {
            if (chunk.done) {
              handle(pending.trim());
              delete form.dataset.sending;
              return;
            }
            pending += decoder.decode(chunk.value, { stream: true });
            var lines = pending.split("\n");
            pending = lines.pop();
            lines.forEach(function (line) {
              handle(line.trim());
            });
            return pump();
          });
        }
        return pump();
      })
      .catch(function () {
        bubble("note", "The demo server could not be reached.");
        delete form.dataset.sending;
      });
  });

  refresh();
})();
