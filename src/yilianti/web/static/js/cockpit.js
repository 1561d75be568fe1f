/* The cockpit's charts (ES5, no inline script): every element with data-chart names the JSON block that holds
   its months and series; ratios are drawn in percent on the left axis, counts / times / money on the right
   when a chart mixes the two, and a target becomes a dashed line.
   On the wall screen (body.wall) the charts are dark with large type, and the panels rotate: one shown at a time
   for data-rotate seconds, dots to jump to one, ←/→ to step; the panel shown is kept in the URL's #hash so
   the page's periodic reload (meta refresh) carries on where it was. */
(function () {
  'use strict';
  var wall = document.body.className.indexOf('wall') >= 0;
  var charts = [];
  function draw(el) {
    var data = JSON.parse(document.getElementById(el.getAttribute('data-chart')).textContent);
    if (!data.months.length || !data.series.length) { return; }
    var size = wall ? Math.max(14, Math.round(window.innerHeight / 45)) : 12;
    var units = [];
    data.series.forEach(function (s) { var u = s.unit === 'ratio' ? '%' : s.unit; if (units.indexOf(u) < 0) { units.push(u); } });
    var yAxis = units.map(function (u, i) {
      return {type: 'value', min: 0, position: i === 0 ? 'left' : 'right',
              axisLabel: {fontSize: size, formatter: u === '%' ? '{value}%' : '{value}'}};
    });
    var series = data.series.map(function (s, i) {
      var u = s.unit === 'ratio' ? '%' : s.unit;
      var out = {name: s.name, type: (units.length > 1 && i === 0) ? 'bar' : 'line', data: s.data,
                 yAxisIndex: units.indexOf(u), connectNulls: true, smooth: false,
                 lineStyle: {width: wall ? 4 : 2}, symbolSize: wall ? 10 : 4};
      if (s.target !== null && s.target !== undefined) {
        var t = s.unit === 'ratio' ? Math.round(s.target * 1000) / 10 : s.target;
        out.markLine = {symbol: 'none', lineStyle: {type: 'dashed'}, label: {fontSize: size, position: 'insideEndTop', formatter: s.name + ' ' + t + (s.unit === 'ratio' ? '%' : '')},
                        data: [{yAxis: t}]};
      }
      return out;
    });
    var chart = window.echarts.init(el, wall ? 'dark' : null);
    chart.setOption({backgroundColor: wall ? 'transparent' : undefined, textStyle: {fontSize: size},
                     tooltip: {trigger: 'axis'}, legend: {top: 0, textStyle: {fontSize: size}},
                     grid: wall ? {left: 90, right: 90, top: size * 3, bottom: size * 2.5} : {left: 48, right: 48, top: 36, bottom: 28},
                     xAxis: {type: 'category', data: data.months, axisLabel: {fontSize: size}}, yAxis: yAxis, series: series});
    charts.push(chart);
    window.addEventListener('resize', function () { chart.resize(); });
  }
  function rotate() {
    var panels = document.querySelectorAll('.wall-panel');
    var dots = document.getElementById('wall-dots');
    if (!panels.length || !dots) { return; }
    var seconds = parseInt(document.body.getAttribute('data-rotate'), 10) || 20;
    var current = 0;
    var timer = null;
    for (var i = 0; i < panels.length; i++) {
      if ('#' + panels[i].id === window.location.hash) { current = i; }
      var dot = document.createElement('button');
      dot.type = 'button';
      dot.setAttribute('aria-label', panels[i].getAttribute('data-title'));
      dot.setAttribute('data-index', String(i));
      dot.addEventListener('click', function (ev) { show(parseInt(ev.currentTarget.getAttribute('data-index'), 10)); });
      dots.appendChild(dot);
    }
    function show(n) {
      current = (n + panels.length) % panels.length;
      for (var j = 0; j < panels.length; j++) {
        panels[j].className = 'wall-panel' + (j === current ? ' active' : '');
        dots.children[j].className = j === current ? 'active' : '';
      }
      if (window.history && window.history.replaceState) { window.history.replaceState(null, '', '#' + panels[current].id); }
      charts.forEach(function (c) { c.resize(); });
      if (timer) { window.clearTimeout(timer); }
      timer = window.setTimeout(function () { show(current + 1); }, seconds * 1000);
    }
    document.addEventListener('keydown', function (ev) {
      if (ev.key === 'ArrowRight') { show(current + 1); } else if (ev.key === 'ArrowLeft') { show(current - 1); }
    });
    show(current);
  }
  document.addEventListener('DOMContentLoaded', function () {
    if (window.echarts) {
      var els = document.querySelectorAll('[data-chart]');
      for (var i = 0; i < els.length; i++) { draw(els[i]); }
    }
    if (wall) { rotate(); }
  });
}());
