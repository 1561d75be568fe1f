/* Behaviour of every page (ES5), bound here instead of inline handlers: the Content-Security-Policy
   (web/edge.py) allows scripts from /static only. Markup asks for a behaviour with a data attribute:
     data-print                 a button that prints the page
     data-confirm="question"    a form that asks before it is sent
     data-autosubmit            a select (or input) whose change sends its form
     data-hide-broken           an image hidden when it cannot be loaded
     <script type="application/json" data-chart="element-id" [data-percent]>option</script>
                                an echarts chart drawn into element-id from the option (tooltips in % with data-percent) */
(function () {
  'use strict';
  document.addEventListener('click', function (e) {
    var el = e.target && e.target.closest ? e.target.closest('[data-print]') : null;
    if (el) { e.preventDefault(); window.print(); }
  });
  document.addEventListener('submit', function (e) {
    var form = e.target;
    var question = form && form.getAttribute ? form.getAttribute('data-confirm') : null;
    if (question && !window.confirm(question)) { e.preventDefault(); }
  });
  document.addEventListener('change', function (e) {
    var el = e.target;
    if (el && el.hasAttribute && el.hasAttribute('data-autosubmit') && el.form) { el.form.submit(); }
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
  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', drawCharts);
  } else {
    drawCharts();
  }
}());
