// 准备情况检查进度：每秒读取一次检查状态，更新进度条；检查结束后重新载入本页显示摘要。
// 没有 JavaScript 时页面上的"刷新进度"链接起同样作用。
(function () {
  "use strict";
  var box = document.getElementById("run-progress");
  if (!box || box.getAttribute("data-status") !== "running") return;
  var bar = document.getElementById("run-bar");
  var text = document.getElementById("run-text");
  var url = box.getAttribute("data-status-url");
  var doneUrl = box.getAttribute("data-done-url");
  var failures = 0;
  function poll() {
    fetch(url, { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } })
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      })
      .then(function (s) {
        failures = 0;
        bar.max = s.total;
        bar.value = s.done;
        bar.textContent = s.percent + "%";
        if (s.status !== "running") {
          text.textContent = "已完成 " + s.total + " / " + s.total + " 步（100%），正在载入结果……";
          window.location.replace(doneUrl);
          return;
        }
        text.textContent = "已完成 " + s.done + " / " + s.total + " 步（" + s.percent + "%），正在" + s.phase + "……";
        window.setTimeout(poll, 1000);
      })
      .catch(function () {
        failures += 1;
        if (failures < 5) {
          window.setTimeout(poll, 2000);
        } else {
          text.textContent = "无法读取检查进度，请点击“刷新进度”。";
        }
      });
  }
  window.setTimeout(poll, 1000);
})();
