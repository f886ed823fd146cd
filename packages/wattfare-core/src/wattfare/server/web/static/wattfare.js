/*! Wattfare "Connect AI budget" button script. Vanilla JS, no build step, served by the Wattfare server.
 *
 *   <script src="https://YOUR-WATTFARE/wattfare.js"></script>
 *   <script>
 *     const wattfare = Wattfare.createWattfare({
 *       publishableKey: "pk_live_…",          // browser-safe; never a secret key
 *       session: () => fetch("/api/ai-session", { method: "POST" }).then((r) => r.json()).then((b) => b.token),
 *     });
 *     button.onclick = () => wattfare.connect().then(showStatus, showError);  // call it from the click itself
 *     wattfare.status().then(showStatus);
 *     wattfare.disconnect();
 *     function showStatus(status) { label.textContent = Wattfare.budgetText(status); }  // "$4.20 left · $0.30 in use"
 *   </script>
 *
 * connect(): test keys (pk_test_…) connect at once, without a popup. Live keys open the consent popup on
 * Wattfare, where the user signs in, sets a monthly cap and approves; the promise resolves with the
 * connection status the popup posts back (connected: false when the user denied). A blocked or closed popup
 * rejects with a WattfareError ("popup_blocked" / "popup_closed"); it never hangs.
 * session: a function returning a session token (or a promise of one), or the URL of your route that mints
 * one (it is POSTed to, and may answer {"token": "…"} or the bare token).
 * Wattfare.budgetText(status): the connection status in words: what is left this month and, while the user's
 * requests are running, what they hold ("$4.20 left · $0.30 in use"); "No limit" for an uncapped connection.
 */
(function (global) {
  "use strict";

  var script = document.currentScript;
  var scriptOrigin = script && script.src ? new URL(script.src, global.location.href).origin : "";
  var CLOSE_GRACE_MS = 250;
  var POLL_MS = 250;
  var DECISION_TIMEOUT_MS = 11 * 60 * 1000; // a session token lives 10 minutes

  class WattfareError extends Error {
    constructor(code, message, status) {
      super(message);
      this.name = "WattfareError";
      this.code = code;
      this.status = status || 0;
    }
    toJSON() {
      return { error: { code: this.code, message: this.message } };
    }
  }

  function usd(value, down) {
    var amount = Number(value);
    // A cent is too coarse for what one request costs: small amounts keep their micro-dollars.
    if (amount > 0 && amount < 0.01) return "$" + amount.toFixed(6);
    // What is left is rounded down ($1.9996 is "$1.99 left"), so it never reads as more than there is.
    if (down) amount = Math.floor(amount * 100 + 1e-7) / 100;
    return "$" + amount.toFixed(2);
  }

  function budgetText(status) {
    if (!status || !status.connected) {
      return "Not connected";
    }
    var uncapped = status.remainingUsd === null || status.remainingUsd === undefined;
    var text = uncapped ? "No limit" : usd(status.remainingUsd, true) + " left";
    // reservedUsd: what the user's requests in flight hold until they settle (absent from older servers).
    var held = Number(status.reservedUsd || 0);
    return held > 0 ? text + " \u00b7 " + usd(held) + " in use" : text;
  }

  function expiryOf(token) {
    try {
      var part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      return JSON.parse(global.atob(part)).exp * 1000;
    } catch (error) {
      return 0;
    }
  }

  function createWattfare(config) {
    if (!config || typeof config.publishableKey !== "string" || config.publishableKey.indexOf("pk_") !== 0) {
      throw new WattfareError(
        "auth",
        "Wattfare: publishableKey must be your app's publishable key (pk_…). Never put a secret key (sk_…) in a browser."
      );
    }
    if (typeof config.session !== "function" && typeof config.session !== "string") {
      throw new WattfareError(
        "invalid_request",
        "Wattfare: session must be a function returning a session token, or the URL of your route that mints one."
      );
    }
    var publishableKey = config.publishableKey;
    var live = publishableKey.indexOf("pk_live_") === 0;
    var base = String(config.baseURL || scriptOrigin).replace(/\/+$/, "");
    var consentBase = String(config.consentURL || base).replace(/\/+$/, "");
    var consentOrigin = new URL(consentBase).origin;
    var cached = null;

    function mintToken() {
      var source = config.session;
      var pending =
        typeof source === "function"
          ? Promise.resolve().then(source)
          : global.fetch(source, { method: "POST", credentials: "same-origin" }).then(function (response) {
              if (!response.ok) {
                throw new WattfareError("auth", "Wattfare: your session route answered " + response.status + ".", response.status);
              }
              return response.text().then(function (text) {
                try {
                  var body = JSON.parse(text);
                  return typeof body === "string" ? body : body && body.token;
                } catch (error) {
                  return text.trim();
                }
              });
            });
      return pending.then(function (token) {
        if (typeof token !== "string" || token.split(".").length !== 3) {
          throw new WattfareError("auth", "Wattfare: the session source did not give a session token.");
        }
        cached = { token: token, expiresAt: expiryOf(token) };
        return token;
      });
    }

    function sessionToken(fresh) {
      // A token is reused until 30 s before it expires, except to approve: that spends it.
      if (!fresh && cached && cached.expiresAt - 30000 > Date.now()) {
        return Promise.resolve(cached.token);
      }
      return mintToken();
    }

    function request(method, fresh) {
      return sessionToken(fresh)
        .then(function (token) {
          return global
            .fetch(base + "/api/v1/connections", {
              method: method,
              mode: "cors",
              credentials: "omit",
              headers: { authorization: "Bearer " + token, "wattfare-publishable-key": publishableKey },
            })
            .catch(function () {
              throw new WattfareError(
                "network",
                "Wattfare could not be reached, or it does not allow this page's origin (see the app's allowed origins)."
              );
            });
        })
        .then(function (response) {
          if (response.status === 204) {
            return null;
          }
          return response
            .json()
            .catch(function () {
              return null;
            })
            .then(function (payload) {
              if (!response.ok) {
                var error = (payload && payload.error) || {};
                throw new WattfareError(
                  error.code || "unknown",
                  error.message || "Wattfare answered " + response.status + ".",
                  response.status
                );
              }
              return payload;
            });
        });
    }

    function waitForDecision(popup) {
      return new Promise(function (resolve, reject) {
        var settled = false;
        var poll = null;
        var deadline = null;
        function finish() {
          settled = true;
          global.removeEventListener("message", onMessage);
          clearInterval(poll);
          clearTimeout(deadline);
        }
        function onMessage(event) {
          var data = event.data;
          if (event.origin !== consentOrigin || event.source !== popup) return;
          if (!data || data.source !== "wattfare" || data.type !== "wattfare:connect") return;
          finish();
          resolve(data.status);
        }
        global.addEventListener("message", onMessage);
        poll = setInterval(function () {
          if (!popup.closed) return;
          clearInterval(poll);
          // A result posted just before the popup closed is still on its way: give it a moment.
          setTimeout(function () {
            if (settled) return;
            finish();
            reject(new WattfareError("popup_closed", "The Wattfare window was closed before the user decided."));
          }, CLOSE_GRACE_MS);
        }, POLL_MS);
        deadline = setTimeout(function () {
          if (settled) return;
          finish();
          try {
            popup.close();
          } catch (error) {
            /* already gone */
          }
          reject(new WattfareError("timeout", "No decision was made in the Wattfare window within 10 minutes."));
        }, DECISION_TIMEOUT_MS);
      });
    }

    function connect() {
      if (!live) {
        return request("POST", true); // test keys auto-approve: no popup, no sign-in
      }
      // Opened now, inside the click, or the browser blocks it; it is pointed at the consent page once the
      // app's server has minted a session token.
      var popup = global.open("", "wattfare-connect", "popup=yes,width=520,height=720");
      if (!popup) {
        return Promise.reject(
          new WattfareError("popup_blocked", "The browser blocked the Wattfare window: allow pop-ups and press Connect again.")
        );
      }
      return mintToken().then(
        function (token) {
          popup.location.href = consentBase + "/connect?session=" + encodeURIComponent(token);
          return waitForDecision(popup);
        },
        function (error) {
          popup.close();
          throw error;
        }
      );
    }

    return {
      live: live,
      connect: connect,
      status: function () {
        return request("GET", false);
      },
      disconnect: function () {
        return request("DELETE", false).then(function () {
          return undefined;
        });
      },
    };
  }

  global.Wattfare = { createWattfare: createWattfare, WattfareError: WattfareError, budgetText: budgetText };
})(window);
