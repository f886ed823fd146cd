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

  function show(state, message) {
    budget.dataset.state = state;
    budgetText.textContent = message;
    connectButton.hidden = state !== "not-connected" && state !== "funding-invalid";
    connectButton.textContent = state === "funding-invalid" ? "Reconnect" : "Connect AI budget";
    disconnectButton.hidden = state !== "connected";
    manageLink.hidden = state !== "connected" && state !== "budget-exceeded";
  }

  function showStatus(status) {
    if (status && status.connected) {
      // Wattfare.budgetText: "$4.20 left", and "· $0.30 in use" while this visitor's replies are running.
      var cap = status.limits.monthlyUsd;
      var capped = cap === null || cap === undefined ? "" : "Your " + money(cap) + " monthly cap: ";
      show("connected", "Connected · " + capped + Wattfare.budgetText(status) + (config.live ? "" : " (test mode)"));
    } else {
      show("not-connected", "Connect your AI budget to start chatting.");
    }
  }

  function showError(error) {
    var code = error && error.code;
    if (code === "not_connected") {
      show("not-connected", "Your AI budget is not connected to this app. Connect it to chat.");
    } else if (code === "budget_exceeded") {
      var resets = error.resetsAt ? " It resets on " + new Date(error.resetsAt).toUTCString().slice(0, 16) + "." : "";
      show("budget-exceeded", "You reached the monthly cap you set for this app." + resets);
    } else if (code === "funding_invalid") {
      show("funding-invalid", "Your AI budget's funding was refused. Reconnect it to continue.");
    } else if (code === "budget_busy") {
      // Not a spent cap: this visitor's other replies hold the budget for a moment. The budget stays connected.
      refresh();
    } else if (code === "popup_blocked" || code === "popup_closed" || code === "timeout") {
      show("not-connected", error.message);
    } else {
      show("error", (error && error.message) || "Something went wrong.");
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

  connectButton.addEventListener("click", function () {
    // Called straight from the click, so the browser lets Wattfare's consent popup open.
    wattfare.connect().then(showStatus, showError);
  });
  disconnectButton.addEventListener("click", function () {
    wattfare.disconnect().then(refresh, showError);
  });

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value.trim();
    if (!text) return;
    input.value = "";
    bubble("user", text);
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
            if (!reply) answer.remove();
            bubble("note", event.error.code === "budget_busy" ? BUSY : event.error.message);
            showError(event.error);
          }
        }
        function pump() {
          return reader.read().then(function (chunk) {
            if (chunk.done) {
              handle(pending.trim());
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
      });
  });

  refresh();
})();
