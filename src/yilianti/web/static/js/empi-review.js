/* Identity review queue (ES5, no build step). The forms work without it; it adds:
   - on a pair: keyboard shortcuts M = merge (after a confirm), N = not a match, S = skip to the next pair,
     ignored while typing in a field or with a modifier key held;
   - on the list: a button that ticks every open pair of the page at or above 95 %. */
(function () {
  'use strict';
  function typing(el) {
    var tag = el && el.tagName ? el.tagName.toLowerCase() : '';
    return tag === 'input' || tag === 'textarea' || tag === 'select' || (el && el.isContentEditable);
  }
  function submit(form) {
    if (!form) { return; }
    if (form.requestSubmit) { form.requestSubmit(); } else { form.submit(); }
  }
  var decisions = document.getElementById('decisions');
  if (decisions) {
    document.addEventListener('keydown', function (e) {
      if (e.ctrlKey || e.metaKey || e.altKey || e.repeat || typing(e.target)) { return; }
      var key = (e.key || '').toLowerCase();
      if (key === 'm') {
        e.preventDefault();
        submit(document.getElementById('confirm-form'));  // the form's data-confirm asks first (app.js)
      } else if (key === 'n') {
        e.preventDefault();
        submit(document.getElementById('reject-form'));
      } else if (key === 's') {
        var skip = document.getElementById('skip');
        if (skip) { e.preventDefault(); window.location.href = skip.getAttribute('href'); }
      }
    });
  }
  var pick = document.getElementById('select-95');
  if (pick) {
    pick.hidden = false;
    pick.addEventListener('click', function () {
      var boxes = document.querySelectorAll('#candidates input[name="ids"]');
      var i, p;
      for (i = 0; i < boxes.length; i++) {
        p = parseFloat(boxes[i].getAttribute('data-p'));
        boxes[i].checked = !isNaN(p) && p >= 0.95;
      }
    });
  }
}());
