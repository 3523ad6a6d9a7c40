// herald dashboard: keep what is still running up to date, and confirm what cannot be undone.
//
// An element with data-poll is swapped every second for the fragment at its data-src
// until that answers "X-Herald-Finished: yes" (an execution's timeline, an event's
// executions) or refuses (a 4xx: the token may no longer see it). Steps opened by the reader stay open across swaps. A form with
// data-confirm asks before it is sent (forms inside swapped fragments included).
(function () {
  "use strict";

  function openSteps(box) {
    return Array.prototype.map.call(box.querySelectorAll("li.step > details[open]"), function (d) {
      return d.parentNode.dataset.step;
    });
  }

  function reopen(box, open) {
    box.querySelectorAll("li.step").forEach(function (li) {
      if (open.indexOf(li.dataset.step) >= 0) { li.querySelector("details").open = true; }
    });
  }

  function poll(box) {
    fetch(box.dataset.src, { credentials: "same-origin", cache: "no-store" }).then(function (answer) {
      if (answer.redirected) { window.location.assign(answer.url); return; }  // logged out
      // refused (403, 404: asking again will not change it): stop and say so; else try later
      if (answer.status >= 400 && answer.status < 500) { box.dataset.finished = "refused"; return; }
      if (!answer.ok) { setTimeout(function () { poll(box); }, 2000); return; }
      var finished = answer.headers.get("X-Herald-Finished") === "yes";
      return answer.text().then(function (html) {
        var open = openSteps(box);
        box.innerHTML = html;
        reopen(box, open);
        if (finished) { box.dataset.finished = "yes"; }
        else { setTimeout(function () { poll(box); }, 1000); }
      });
    }).catch(function () { setTimeout(function () { poll(box); }, 2000); });
  }

  document.querySelectorAll("[data-poll]").forEach(function (box) {
    if (box.dataset.finished !== "yes") { setTimeout(function () { poll(box); }, 1000); }
  });

  document.addEventListener("submit", function (event) {
    var question = event.target.dataset && event.target.dataset.confirm;
    if (question && !window.confirm(question)) { event.preventDefault(); }
  });
})();
