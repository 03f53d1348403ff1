// Tessera pages: every form marked data-fetch is sent with fetch so that the answer can be shown inline, and a
// form marked data-confirm first asks "Are you sure?" beside its button (with its data-confirm-warning, if any, such
// as "This signs you out too"). Without this script the forms still work.
// A form marked data-new-token (the account page's "Create token") gets the new API token's secret in its JSON
// answer: it is shown in the element that attribute names, once, and the part named by data-refresh is read again
// from the page, so that a reload shows the list but never the secret. A button marked data-copy copies the field it
// names to the clipboard, or selects it where the Clipboard API is not available.
(function () {
  "use strict";

  var UNREACHABLE = "Could not reach Tessera, so nothing was changed. Check the connection and try again.";
  var warnings = 0;

  function statusOf(form) {
    var status = form.querySelector(".form-status");
    if (!status) {
      status = document.createElement("p");
      status.className = "form-status";
      status.setAttribute("role", "alert");
      form.appendChild(status);
    }
    return status;
  }

  function setBusy(form, busy) {
    form.querySelectorAll("button").forEach(function (button) { button.disabled = busy; });
    form.setAttribute("aria-busy", busy ? "true" : "false");
  }

  function showError(form, message) {
    // The header's buttons share one place for their message (under the header, over the page): one at a time.
    var header = form.closest(".site-header");
    if (header) {
      header.querySelectorAll(".form-status").forEach(function (other) {
        if (other.closest("form") !== form) { other.textContent = ""; other.classList.remove("error"); }
      });
    }
    var status = statusOf(form);
    status.textContent = message;
    status.classList.add("error");
  }

  function send(form) {
    var status = statusOf(form);
    status.textContent = "";
    status.classList.remove("error");
    setBusy(form, true);
    var body = new URLSearchParams(new FormData(form));
    fetch(form.action, {
      method: "POST",
      body: body,
      credentials: "same-origin",
      headers: { "X-Tessera-Fetch": "1", "Accept": "application/json" }
    }).then(function (response) {
      return response.json().catch(function () { return null; }).then(function (data) {
        if (data && data.redirect) {
          window.location.assign(data.redirect);
          return;
        }
        setBusy(form, false);
        if (!response.ok) {
          showError(form, (data && data.detail) || ("Tessera answered " + response.status + "; nothing is known to have changed. Try again."));
        } else if (data && data.token && form.hasAttribute("data-new-token")) {
          showNewToken(form, data);
        }
      });
    }, function () {
      setBusy(form, false);
      showError(form, UNREACHABLE);
    });
  }

  function showNewToken(form, data) {
    var panel = document.getElementById(form.getAttribute("data-new-token"));
    panel.querySelector(".new-token-name").textContent = data.name;
    var secret = panel.querySelector("input");
    secret.value = data.token;
    panel.querySelector(".copy-status").textContent = "";
    panel.hidden = false;
    form.reset();
    secret.focus();
    secret.select();
    refreshPart(form.getAttribute("data-refresh"));
  }

  // Reads the page again and swaps in its element `id` (the token list, with the new token in it). Nothing is lost
  // when that fails: a reload shows the same.
  function refreshPart(id) {
    var part = id && document.getElementById(id);
    if (!part) { return; }
    fetch(window.location.pathname, { credentials: "same-origin", headers: { "Accept": "text/html" } }).then(function (response) {
      return response.ok ? response.text() : null;
    }).then(function (html) {
      var fresh = html && new DOMParser().parseFromString(html, "text/html").getElementById(id);
      if (fresh) { part.replaceWith(document.importNode(fresh, true)); }
    }).catch(function () {});
  }

  function copyField(button) {
    var field = document.getElementById(button.getAttribute("data-copy"));
    var status = button.closest(".new-token").querySelector(".copy-status");
    function selectInstead() {
      field.focus();
      field.select();
      var copied = false;
      try { copied = document.execCommand("copy"); } catch (error) { copied = false; }
      status.textContent = copied ? "Copied." : "Selected: press Ctrl+C (⌘C on a Mac) to copy it.";
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(field.value).then(function () { status.textContent = "Copied."; }, selectInstead);
    } else {
      selectInstead();
    }
  }

  document.querySelectorAll("[data-copy]").forEach(function (button) { button.hidden = false; });
  document.addEventListener("click", function (event) {
    var button = event.target instanceof Element && event.target.closest("[data-copy]");
    if (button) { copyField(button); }
  });

  function makeButton(text, className) {
    var button = document.createElement("button");
    button.type = "button";
    button.className = className;
    button.textContent = text;
    return button;
  }

  function askFirst(form) {
    var submit = form.querySelector("[type=submit]");
    var box = form.querySelector(".confirm");
    if (!box) {
      box = document.createElement("span");
      box.className = "confirm";
      box.setAttribute("role", "group");
      box.setAttribute("aria-label", "Confirm: " + submit.textContent);
      var question = document.createElement("span");
      question.className = "confirm-question";
      question.textContent = "Are you sure?";
      var yes = makeButton("Yes", "confirm-yes");
      var cancel = makeButton("Cancel", "confirm-cancel");
      yes.addEventListener("click", function () {
        box.hidden = true;
        submit.hidden = false;
        form.dataset.confirmed = "yes";
        form.requestSubmit();
      });
      cancel.addEventListener("click", function () {
        box.hidden = true;
        submit.hidden = false;
        submit.focus();
      });
      box.addEventListener("keydown", function (event) {
        if (event.key === "Escape") { cancel.click(); }
      });
      var warning = form.getAttribute("data-confirm-warning");
      if (warning) {
        var note = document.createElement("span");
        note.className = "confirm-warning";
        note.id = "confirm-warning-" + (++warnings);
        note.textContent = warning;
        box.setAttribute("aria-describedby", note.id);
        box.append(note, " ");
      }
      box.append(question, " ", yes, " ", cancel);
      submit.after(box);
    }
    box.hidden = false;
    submit.hidden = true;
    box.querySelector(".confirm-cancel").focus();
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-fetch")) { return; }
    event.preventDefault();
    if (form.hasAttribute("data-confirm") && form.dataset.confirmed !== "yes") {
      askFirst(form);
      return;
    }
    delete form.dataset.confirmed;
    send(form);
  });
})();
