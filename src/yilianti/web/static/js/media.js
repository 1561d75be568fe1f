/* Report editor helper (ES5): copy the ECG reading into the report form's measurement and conclusion boxes.
   The editor is prefilled from the ECG when the report has no measurements yet; this button brings the ECG
   page's current values in again: a line with the same name is replaced, other lines are kept. */
function ylFillReport(box) {
  'use strict';
  var m = document.getElementById('f-measurements');
  var c = document.getElementById('f-conclusion');
  var lines = (box.getAttribute('data-measurements') || '').split('\n');
  var conclusion = box.getAttribute('data-conclusion') || '';
  function key(line) { return line.replace('：', ':').split(/[:=]/)[0].replace(/^\s+|\s+$/g, '').toLowerCase(); }
  if (m && lines.join('')) {
    var have = m.value ? m.value.replace(/\s+$/, '').split('\n') : [];
    var i, j, found;
    for (i = 0; i < lines.length; i++) {
      if (!lines[i]) { continue; }
      found = false;
      for (j = 0; j < have.length; j++) {
        if (key(have[j]) === key(lines[i])) { have[j] = lines[i]; found = true; }
      }
      if (!found) { have.push(lines[i]); }
    }
    m.value = have.join('\n');
  }
  if (c && conclusion && !c.value) { c.value = conclusion; }
  return false;
}

// the ECG summary comes in by htmx: its button is bound once, on the document
document.addEventListener('click', function (e) {
  'use strict';
  if (e.target && e.target.id === 'ecg-fill-report') { ylFillReport(e.target.parentNode); }
});
