// herald dashboard: refresh an execution's timeline every second until it finishes.
(function () {
  "use strict";
  var box = document.getElementById("timeline");
  if (!box || box.dataset.finished === "yes") { return; }
  var finished = ["succeeded", "failed", "cancelled"];
  function poll() {
    fetch(box.dataset.src, { credentials: "same-origin" }).then(function (answer) {
      if (!answer.ok) { return; }
      var status = answer.headers.get("X-Herald-Status");
      return answer.text().then(function (html) {
        var open = Array.prototype.map.call(box.querySelectorAll("details[open]"), function (d) {
          return d.parentNode.dataset.task;
        });
        box.innerHTML = html;
        box.querySelectorAll("li.step").forEach(function (li) {
          if (open.indexOf(li.dataset.task) >= 0) { li.querySelector("details").open = true; }
        });
        if (finished.indexOf(status) < 0) { setTimeout(poll, 1000); }
        else { box.dataset.finished = "yes"; }
      });
    }).catch(function () { setTimeout(poll, 2000); });
  }
  setTimeout(poll, 1000);
})();
