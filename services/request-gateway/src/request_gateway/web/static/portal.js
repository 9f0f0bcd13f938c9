// The portal: request pages follow the user's changes live (the pages work without it).
//
// An element with `data-events="<stream url>"` opens the portal's event stream (the API's
// `GET /api/v1/requests/events`, signed in by the session cookie): each `request` event is
// a request as the API reads it. A request's page (`#request[data-request-id]`) shows its
// status, answer or error as they come; a list shows each row's new status.
"use strict";

const FINAL = new Set(["completed", "failed", "cancelled", "expired"]);

function statusText(item) {
  const pending = item.cancel_requested && !FINAL.has(item.status);
  return pending ? `${item.status} (cancel requested)` : item.status;
}

function utc(iso) {
  // "2026-12-02T16:22:41.123Z" as the server writes it: "2026-12-02 16:22:41 UTC".
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)} UTC`;
}

function setText(id, text) {
  const element = document.getElementById(id);
  if (element) element.textContent = text;
}

function showRequest(page, item) {
  if (item.id !== page.getAttribute("data-request-id")) return false;
  setText("request-status", statusText(item));
  setText("request-updated", utc(item.updated_at));
  if (item.response !== null && item.response !== undefined) {
    setText("request-response", JSON.stringify(item.response, null, 2));
    document.getElementById("request-answer").hidden = false;
  }
  if (item.error) {
    setText("request-error-code", item.error.code);
    setText("request-error-message", item.error.message);
    document.getElementById("request-failure").hidden = false;
  }
  if (!FINAL.has(item.status)) return false;
  for (const id of ["request-pending", "request-cancel"]) {
    const element = document.getElementById(id);
    if (element) element.remove();
  }
  return true; // nothing more will change
}

function showInList(item) {
  const cell = document.querySelector(`[data-status-of="${CSS.escape(item.id)}"]`);
  if (cell) cell.textContent = statusText(item);
}

function follow(holder) {
  if (!window.EventSource) return;
  const pending = document.getElementById("request-pending");
  const source = new EventSource(holder.getAttribute("data-events"));
  const stopped = (why) => {
    source.close();
    if (pending) pending.textContent = `${why} Reload the page to see how it goes.`;
  };
  source.addEventListener("open", () => {
    if (pending) pending.textContent = pending.getAttribute("data-live-text");
  });
  source.addEventListener("request", (event) => {
    const item = JSON.parse(event.data);
    if (holder.id === "request") {
      if (showRequest(holder, item)) source.close();
    } else {
      showInList(item);
    }
  });
  source.addEventListener("error", (event) => {
    if (event.data) {
      // The server's own `error` event: the stream was refused (too many open at once).
      stopped(JSON.parse(event.data).message);
    } else if (source.readyState === EventSource.CLOSED) {
      // Refused before it started (signed out, too many streams, the server stopping).
      stopped("Live updates stopped.");
    }
    // Otherwise the browser reconnects by itself, resuming after the last event it saw.
  });
}

window.addEventListener("DOMContentLoaded", () => {
  for (const holder of document.querySelectorAll("[data-events]")) follow(holder);
});
