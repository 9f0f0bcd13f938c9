// servicekit.web: small improvements over pages that work without any script.
"use strict";

// <form data-confirm="Really?">: ask before submitting.
document.addEventListener("submit", (event) => {
  const form = event.target;
  const question = form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});

// <input type="checkbox" data-select-all="name">: ticks or clears every box called `name`.
document.addEventListener("change", (event) => {
  const box = event.target;
  const name = box.getAttribute && box.getAttribute("data-select-all");
  if (!name) return;
  for (const other of document.querySelectorAll(`input[type=checkbox][name="${name}"]`)) {
    other.checked = box.checked;
  }
});

// <form data-upload-progress="progress-id">: post with a progress bar, then follow the answer.
document.addEventListener("submit", (event) => {
  const form = event.target;
  const progressId = form.getAttribute("data-upload-progress");
  if (!progressId || event.defaultPrevented) return;
  const progress = document.getElementById(progressId);
  if (!progress || !window.XMLHttpRequest) return;
  event.preventDefault();
  const request = new XMLHttpRequest();
  request.open(form.method, form.action);
  progress.hidden = false;
  progress.value = 0;
  request.upload.addEventListener("progress", (e) => {
    if (e.lengthComputable) progress.value = Math.round((100 * e.loaded) / e.total);
  });
  request.responseType = "document";
  request.addEventListener("load", () => {
    // The server answered with a page (the result, or the form with its errors): show it.
    const answer = request.response;
    if (!answer || !answer.documentElement) {
      form.submit();
      return;
    }
    document.replaceChild(document.adoptNode(answer.documentElement), document.documentElement);
    if (request.responseURL) window.history.replaceState(null, "", request.responseURL);
  });
  request.addEventListener("error", () => {
    progress.hidden = true;
    form.submit();
  });
  request.send(new FormData(form));
});

// <main data-refresh-seconds="15">: reload the page while nobody is typing in it.
window.addEventListener("load", () => {
  const holder = document.querySelector("[data-refresh-seconds]");
  if (!holder) return;
  const seconds = Number(holder.getAttribute("data-refresh-seconds"));
  if (!(seconds > 0)) return;
  window.setInterval(() => {
    const active = document.activeElement;
    if (active && ["INPUT", "SELECT", "TEXTAREA"].includes(active.tagName)) return;
    window.location.reload();
  }, seconds * 1000);
});
