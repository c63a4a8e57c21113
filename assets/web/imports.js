// 导入：上传进度条。没有脚本时表单照常提交；有脚本时用 XMLHttpRequest 上传以显示进度，
// 上传完成后服务器检查文件期间进度条转为“进行中”，完成后打开服务器重定向到的预览页。
// 确认导入时（表单照常提交）也显示“进行中”的进度条，直到结果页打开。
(function () {
  'use strict';
  var confirmForm = document.getElementById('confirm-form');
  if (confirmForm) {
    confirmForm.addEventListener('submit', function () {
      var working = document.createElement('progress');
      working.id = 'c-progress';
      working.setAttribute('aria-label', '导入进度');
      var note = document.createElement('p');
      note.className = 'muted small';
      note.setAttribute('role', 'status');
      note.textContent = '正在导入，请稍候…';
      confirmForm.appendChild(working);
      confirmForm.appendChild(note);
      // Once the submission has started, a second click cannot send it again.
      var button = confirmForm.querySelector('button[type=submit]');
      if (button) { setTimeout(function () { button.disabled = true; }, 0); }
    });
  }
  var form = document.getElementById('import-form');
  if (!form || !window.XMLHttpRequest || !window.FormData) { return; }
  var bar = document.getElementById('i-progress');
  var status = document.getElementById('i-status');
  form.setAttribute('data-progress', 'on');
  form.addEventListener('submit', function (ev) {
    ev.preventDefault();
    var button = form.querySelector('button[type=submit]');
    var xhr = new XMLHttpRequest();
    xhr.open('POST', form.action);
    bar.hidden = false;
    bar.value = 0;
    status.textContent = '正在上传…';
    if (button) { button.disabled = true; }
    xhr.upload.addEventListener('progress', function (e) {
      if (e.lengthComputable) {
        bar.value = Math.round(e.loaded * 100 / e.total);
        status.textContent = '已上传 ' + bar.value + '%';
      }
    });
    xhr.upload.addEventListener('load', function () {
      // The server now reads and checks the file: an indeterminate bar until the preview opens.
      bar.removeAttribute('value');
      status.textContent = '上传完成，正在检查文件…';
    });
    xhr.addEventListener('load', function () {
      if (xhr.status === 200 && xhr.responseURL && xhr.responseURL.indexOf('/imports/') !== -1) {
        window.location.assign(xhr.responseURL);
      } else {
        // An error page: show it as the browser would have.
        document.open();
        document.write(xhr.responseText);
        document.close();
      }
    });
    xhr.addEventListener('error', function () {
      status.textContent = '上传失败，请检查网络后重试';
      bar.hidden = true;
      if (button) { button.disabled = false; }
    });
    xhr.send(new FormData(form));
  });
})();
