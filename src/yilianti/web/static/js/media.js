/* Report editor helper (ES5): copy the ECG reading into the report form's measurement and conclusion boxes. */
function ylFillReport(box) {
  'use strict';
  var m = document.getElementById('f-measurements');
  var c = document.getElementById('f-conclusion');
  var lines = box.getAttribute('data-measurements') || '';
  var conclusion = box.getAttribute('data-conclusion') || '';
  if (m && lines) { m.value = m.value ? m.value.replace(/\s+$/, '') + '\n' + lines : lines; }
  if (c && conclusion && !c.value) { c.value = conclusion; }
  return false;
}
