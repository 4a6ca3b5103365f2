// modelyard console: live updates by polling the page itself, and confirmations.
// Elements with an id and data-live="1" are replaced by the same element of a fresh copy
// of the page every two seconds, until the fresh copy no longer marks any of them live.
"use strict";
(function () {
  var PERIOD_MS = 2000;

  function liveElements(root) {
    return Array.prototype.slice.call(root.querySelectorAll("[data-live='1'][id]"));
  }

  function keepLogAtBottom(oldNode, newNode) {
    var oldLog = oldNode.querySelector("pre.log");
    var newLog = newNode.querySelector("pre.log");
    var atBottom = !oldLog || oldLog.scrollTop + oldLog.clientHeight >= oldLog.scrollHeight - 4;
    return function () {
      if (newLog && atBottom) { newLog.scrollTop = newLog.scrollHeight; }
    };
  }

  function poll() {
    if (liveElements(document).length === 0) { return; }
    fetch(window.location.href, {credentials: "same-origin", headers: {"X-Console-Poll": "1"}})
      .then(function (response) {
        if (!response.ok || response.redirected) { throw new Error("stopped"); }
        return response.text();
      })
      .then(function (text) {
        var fresh = new DOMParser().parseFromString(text, "text/html");
        liveElements(document).forEach(function (node) {
          var replacement = fresh.getElementById(node.id);
          if (!replacement) { return; }
          var focused = document.activeElement && node.contains(document.activeElement);
          var after = keepLogAtBottom(node, replacement);
          node.replaceWith(document.importNode(replacement, true));
          after();
          if (focused) { var again = document.getElementById(node.id); if (again) { again.focus(); } }
        });
        window.setTimeout(poll, PERIOD_MS);
      })
      .catch(function () { window.setTimeout(poll, PERIOD_MS * 5); });
  }

  document.addEventListener("submit", function (event) {
    var button = event.submitter || event.target.querySelector("button[data-confirm]");
    var question = button && button.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { event.preventDefault(); }
  });

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("pre.log").forEach(function (log) { log.scrollTop = log.scrollHeight; });
    window.setTimeout(poll, PERIOD_MS);
  });
})();
