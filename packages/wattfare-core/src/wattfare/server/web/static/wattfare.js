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
 *
 *     // One-time grants: no connection, no app user; a page that only asks for grants needs no session.
 *     allow.onclick = () => wattfare.requestGrant({ requests: 3, maxUsd: 0.5 })   // from the click itself, too
 *       .then(({ grantToken, expiresAt }) => sendToYourServer(grantToken), showError);
 *   </script>
 *
 * connect(): test keys (pk_test_…) connect at once, without a popup. Live keys open the consent popup on
 * Wattfare, where the user signs in, sets a monthly cap and approves; the promise resolves with the
 * connection status the popup posts back (connected: false when the user denied). A blocked or closed popup
 * rejects with a WattfareError ("popup_blocked" / "popup_closed"); it never hangs.
 * session: a function returning a session token (or a promise of one), or the URL of your route that mints
 * one (it is POSTed to, and may answer {"token": "…"} or the bare token). Optional: without it, connect(),
 * status() and disconnect() reject with a WattfareError ("invalid_request"); requestGrant() needs none.
 * requestGrant({ requests, maxUsd, expiresInSeconds }): a one-time grant of `requests` requests (1 to 1000), at
 * most `maxUsd` US dollars in all (a number or a decimal string; leave it out for no dollar cap), living
 * `expiresInSeconds` (60 to 86400; one hour when left out). Test keys get one at once (POST /api/v1/grants from
 * one of the app's registered origins, no popup); live keys open Wattfare's grant popup, where the member signs
 * in and approves. Resolves { grantToken, expiresAt } (unix seconds): hand the token to your server, which
 * sends it as the `Wattfare-Grant` header with its secret key. Rejects with a WattfareError: "grant_denied"
 * (the member pressed Deny), "popup_blocked", "popup_closed", "timeout", or the API's code.
 * Wattfare.budgetText(status): the connection status in words: what is left this month and, while the user's
 * requests are running, what they hold ("$4.20 left · $0.30 in use"); "No limit" for an uncapped connection.
 */
(function (global) {
  "use strict";

  var script = document.currentScript;
  var scriptOrigin = script && script.src ? new URL(script.src, global.location.href).origin : "";
  var CLOSE_GRACE_MS = 250;
  var POLL_MS = 250;
  var DECISION_TIMEOUT_MS = 11 * 60 * 1000; // a session token, or a grant popup's offer, lives 10 minutes

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
    var hasSession = config.session !== undefined && config.session !== null;
    if (hasSession && typeof config.session !== "function" && typeof config.session !== "string") {
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

    function withoutSession(method) {
      return Promise.reject(
        new WattfareError(
          "invalid_request",
          "Wattfare: " + method + "() needs the session option of createWattfare (a function returning a session " +
            "token, or the URL of your route that mints one). A page that only asks for grants can use requestGrant()."
        )
      );
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
            .catch(unreachable);
        })
        .then(answer);
    }

    function unreachable() {
      throw new WattfareError(
        "network",
        "Wattfare could not be reached, or it does not allow this page's origin (see the app's allowed origins)."
      );
    }

    // An API answer: its JSON, or a WattfareError carrying the error envelope's code.
    function answer(response) {
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
    }

    // The popup's answer: the message of `type` it posts from Wattfare's origin, handed to `decided`, which
    // returns what the promise resolves with (or throws what it rejects with).
    function waitForDecision(popup, type, decided) {
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
          if (!data || data.source !== "wattfare" || data.type !== type) return;
          finish();
          try {
            resolve(decided(data));
          } catch (error) {
            reject(error);
          }
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

    function openPopup(name) {
      // Opened now, inside the click, or the browser blocks it.
      return global.open("", name, "popup=yes,width=520,height=720");
    }

    function blocked(what) {
      return Promise.reject(
        new WattfareError("popup_blocked", "The browser blocked the Wattfare window: allow pop-ups and press " + what + " again.")
      );
    }

    function connect() {
      if (!hasSession) return withoutSession("connect");
      if (!live) {
        return request("POST", true); // test keys auto-approve: no popup, no sign-in
      }
      // Pointed at the consent page once the app's server has minted a session token.
      var popup = openPopup("wattfare-connect");
      if (!popup) return blocked("Connect");
      return mintToken().then(
        function (token) {
          popup.location.href = consentBase + "/connect?session=" + encodeURIComponent(token);
          return waitForDecision(popup, "wattfare:connect", function (data) {
            return data.status;
          });
        },
        function (error) {
          popup.close();
          throw error;
        }
      );
    }

    function grantTerms(options) {
      var terms = { requests: options && options.requests };
      if (typeof terms.requests !== "number" || terms.requests % 1 !== 0 || terms.requests < 1) {
        throw new WattfareError("invalid_request", "Wattfare: requestGrant needs requests, a whole number from 1.");
      }
      if (options.maxUsd !== undefined && options.maxUsd !== null) terms.maxUsd = String(options.maxUsd);
      if (options.expiresInSeconds !== undefined && options.expiresInSeconds !== null) {
        terms.expiresInSeconds = options.expiresInSeconds;
      }
      return terms;
    }

    function requestGrant(options) {
      var terms;
      try {
        terms = grantTerms(options);
      } catch (error) {
        return Promise.reject(error);
      }
      if (!live) {
        // Test keys get a grant at once, from the app's registered origin: no popup, no sign-in.
        var body = { requests: terms.requests };
        if (terms.maxUsd !== undefined) body.maxUsd = Number(terms.maxUsd);
        if (terms.expiresInSeconds !== undefined) body.expiresInSeconds = terms.expiresInSeconds;
        return global
          .fetch(base + "/api/v1/grants", {
            method: "POST",
            mode: "cors",
            credentials: "omit",
            headers: { "content-type": "application/json", "wattfare-publishable-key": publishableKey },
            body: JSON.stringify(body),
          })
          .catch(unreachable)
          .then(answer)
          .then(function (grant) {
            return { grantToken: grant.grantToken, expiresAt: grant.expiresAt };
          });
      }
      var popup = openPopup("wattfare-grant");
      if (!popup) return blocked("the button");
      var query = "key=" + encodeURIComponent(publishableKey) + "&requests=" + encodeURIComponent(terms.requests);
      if (terms.maxUsd !== undefined) query += "&maxUsd=" + encodeURIComponent(terms.maxUsd);
      if (terms.expiresInSeconds !== undefined) {
        query += "&expiresInSeconds=" + encodeURIComponent(terms.expiresInSeconds);
      }
      popup.location.href = consentBase + "/grant?" + query;
      return waitForDecision(popup, "wattfare:grant", function (data) {
        if (data.result !== "approved" || typeof data.grantToken !== "string") {
          throw new WattfareError("grant_denied", "The member denied the grant in the Wattfare window.");
        }
        return { grantToken: data.grantToken, expiresAt: data.expiresAt };
      });
    }

    return {
      live: live,
      connect: connect,
      requestGrant: requestGrant,
      status: function () {
        if (!hasSession) return withoutSession("status");
        return request("GET", false);
      },
      disconnect: function () {
        if (!hasSession) return withoutSession("disconnect");
        return request("DELETE", false).then(function () {
          return undefined;
        });
      },
    };
  }

  global.Wattfare = { createWattfare: createWattfare, WattfareError: WattfareError, budgetText: budgetText };
})(window);
