/* Forms that never lose input: keyboard use of the patient picker (no inline scripts: CSP). */
(function () {
  "use strict";

  function options(picker) {
    return Array.prototype.slice.call(picker.querySelectorAll(".pick-option"));
  }

  function mark(picker, index) {
    var opts = options(picker);
    opts.forEach(function (o, i) {
      o.classList.toggle("active", i === index);
      o.setAttribute("aria-selected", i === index ? "true" : "false");
    });
    return opts[index];
  }

  function current(picker) {
    var opts = options(picker);
    for (var i = 0; i < opts.length; i++) {
      if (opts[i].classList.contains("active")) { return i; }
    }
    return -1;
  }

  /* Enter in a look-up box (specialty...) asks for its fragment instead of submitting the form */
  document.addEventListener("keydown", function (ev) {
    var el = ev.target;
    if (ev.key !== "Enter" || !el || !el.classList || !el.classList.contains("enter-lookup")) { return; }
    ev.preventDefault();
    if (window.htmx) { window.htmx.trigger(el, "lookup"); }
  });

  document.addEventListener("keydown", function (ev) {
    var input = ev.target;
    if (!input || !input.classList || !input.classList.contains("pick-input")) { return; }
    var picker = input.closest(".picker");
    if (!picker) { return; }
    var opts = options(picker);
    var i = current(picker);
    if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
      if (!opts.length) { return; }
      ev.preventDefault();
      i = ev.key === "ArrowDown" ? Math.min(i + 1, opts.length - 1) : Math.max(i - 1, 0);
      var chosen = mark(picker, i);
      if (chosen) { input.setAttribute("aria-activedescendant", chosen.id); }
    } else if (ev.key === "Enter") {
      /* Enter in the search box chooses (the highlighted or the only match); it never submits the form */
      ev.preventDefault();
      if (i < 0 && opts.length === 1) { i = 0; }
      if (i >= 0 && opts[i]) { opts[i].click(); }
    } else if (ev.key === "Escape") {
      var list = picker.querySelector(".pick-results");
      if (list) { list.innerHTML = ""; }
    }
  });

  /* after a choice, put the cursor on the next field so typing goes on */
  document.addEventListener("htmx:afterSwap", function (ev) {
    var target = ev.detail && ev.detail.target;
    if (!target) { return; }
    var picker = target.classList && target.classList.contains("picker") ? target : null;
    if (picker === null) {
      var byId = target.id && document.getElementById(target.id);
      picker = byId && byId.classList.contains("picker") ? byId : null;
    }
    if (picker === null) { return; }
    var fresh = document.getElementById(picker.id);
    if (!fresh) { return; }
    var search = fresh.querySelector(".pick-input");
    if (search) { search.focus(); return; }
    var picked = fresh.querySelector(".picked");
    if (picked) { picked.focus(); }
  });

  document.addEventListener("htmx:afterSettle", function (ev) {
    var target = ev.detail && ev.detail.target;
    if (!target || !target.classList || !target.classList.contains("pick-results")) { return; }
    var picker = target.closest(".picker");
    var input = picker && picker.querySelector(".pick-input");
    if (input) { input.setAttribute("aria-expanded", options(picker).length ? "true" : "false"); }
  });
})();
