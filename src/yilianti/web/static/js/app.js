/* Shared page behaviour (ES5, no build step, no inline script: the pages work without it). It adds:
   - the ☰ menu on a phone: the button opens and closes the navigation (aria-expanded kept in step);
   - list tables stacked as cards on a phone: each cell gets its column's heading as data-label;
   - a row of tabs that scrolls sideways on a phone (nav.tabs-scroll) opens scrolled to its current tab;
   - data-confirm="…" on a form (or a submit button) asks before sending it;
   - data-autosubmit on a select sends its form when the choice changes;
   - data-print on a button prints the page; data-hide-broken on an image hides it when it cannot load;
   - <script type="application/json" data-chart="element-id" [data-percent]>option</script> draws an echarts
     chart into element-id (tooltips in % with data-percent).
   The Content-Security-Policy (web/edge.py) allows scripts from /static only: behaviours are bound here. */
(function () {
  'use strict';
  var toggle = document.getElementById('menu-toggle');
  var header = document.querySelector('header.top');
  if (toggle && header) {
    toggle.addEventListener('click', function () {
      var open = header.className.indexOf(' open') < 0;
      header.className = open ? header.className + ' open' : header.className.replace(' open', '');
      toggle.setAttribute('aria-expanded', open ? 'true' : 'false');
    });
  }

  var rows = document.querySelectorAll('nav.tabs-scroll');
  for (var r = 0; r < rows.length; r++) {
    var current = rows[r].querySelector('.current');
    if (current && rows[r].scrollWidth > rows[r].clientWidth) {
      rows[r].scrollLeft = current.offsetLeft - (rows[r].clientWidth - current.offsetWidth) / 2;
    }
  }

  function text(el) { return (el.textContent || '').replace(/\s+/g, ' ').replace(/^ | $/g, ''); }
  // a list table: a <thead>, or a first row of headings only (<tr><th>…<th>…); a key/value table (one <th> per
  // row) is left as it is. A list table gets class list-table (stacked as cards on a phone, app.css) and each
  // cell its column's heading as data-label.
  function headRow(table) {
    var thead = table.querySelector('thead tr');
    if (thead) { return thead; }
    var first = table.querySelector('tr');
    if (!first || first.children.length < 2) { return null; }
    for (var i = 0; i < first.children.length; i++) {
      if (first.children[i].tagName !== 'TH') { return null; }
    }
    return first;
  }
  function label(table) {
    if (table.id === 'candidates' || /(^| )(compare|keep-table)( |$)/.test(table.className)) { return; }
    var head = headRow(table);
    if (!head) { return; }
    if (!/(^| )list-table( |$)/.test(table.className)) { table.className += ' list-table'; }
    if (!/(^| )head-row( |$)/.test(head.className)) { head.className += ' head-row'; }
    var heads = head.children;
    var names = [];
    for (var i = 0; i < heads.length; i++) {
      var span = parseInt(heads[i].getAttribute('colspan') || '1', 10);
      for (var j = 0; j < span; j++) { names.push(text(heads[i])); }
    }
    var rows = table.querySelectorAll('tr');
    for (var r = 0; r < rows.length; r++) {
      if (rows[r] === head || rows[r].parentNode.tagName === 'THEAD') { continue; }
      var col = 0;
      for (var c = 0; c < rows[r].children.length; c++) {
        var cell = rows[r].children[c];
        var across = parseInt(cell.getAttribute('colspan') || '1', 10);
        // a cell across the whole row (a list's "nothing here" line) belongs to no column
        var name = names.length > 1 && across >= names.length ? '' : names[col];
        if (name !== undefined && !cell.hasAttribute('data-label')) { cell.setAttribute('data-label', name); }
        col += across;
      }
    }
  }
  function labelAll(root) {
    var tables = (root || document).querySelectorAll('main table');
    for (var t = 0; t < tables.length; t++) { label(tables[t]); }
  }
  labelAll(document);
  document.addEventListener('htmx:afterSettle', function () { labelAll(document); });

  document.addEventListener('submit', function (e) {
    var form = e.target;
    var button = e.submitter;
    var ask = (button && button.getAttribute('data-confirm')) || form.getAttribute('data-confirm');
    if (ask && !window.confirm(ask)) { e.preventDefault(); e.stopImmediatePropagation(); }
  }, true);

  document.addEventListener('change', function (e) {
    var el = e.target;
    if (el.hasAttribute && el.hasAttribute('data-autosubmit') && el.form) {
      if (el.form.requestSubmit) { el.form.requestSubmit(); } else { el.form.submit(); }
    }
  });

  document.addEventListener('click', function (e) {
    var el = e.target && e.target.closest ? e.target.closest('[data-print]') : null;
    if (el) { e.preventDefault(); window.print(); }
  });
  document.addEventListener('error', function (e) {  // error does not bubble: listen while it is captured
    var el = e.target;
    if (el && el.tagName === 'IMG' && el.hasAttribute('data-hide-broken')) { el.style.display = 'none'; }
  }, true);

  function percent(v) { return v === null || v === undefined ? '\u2014' : v + '%'; }
  function drawCharts() {
    if (!window.echarts) { return; }
    var specs = document.querySelectorAll('script[type="application/json"][data-chart]');
    for (var i = 0; i < specs.length; i++) {
      var target = document.getElementById(specs[i].getAttribute('data-chart'));
      if (!target) { continue; }
      var option = JSON.parse(specs[i].textContent);
      if (specs[i].hasAttribute('data-percent')) {
        option.tooltip = option.tooltip || {};
        option.tooltip.valueFormatter = percent;
      }
      window.echarts.init(target).setOption(option);
    }
  }
  // echarts is loaded (deferred) by the page's head block, after this file: draw once everything has run
  document.addEventListener('DOMContentLoaded', drawCharts);
}());
