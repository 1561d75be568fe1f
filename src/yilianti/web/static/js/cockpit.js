/* The cockpit's charts (ES5, no inline script): every element with data-chart names the JSON block that holds
   its months and series; ratios are drawn in percent on the left axis, counts / times / money on the right
   when a chart mixes the two, and a target becomes a dashed line. */
(function () {
  'use strict';
  function draw(el) {
    var data = JSON.parse(document.getElementById(el.getAttribute('data-chart')).textContent);
    if (!data.months.length || !data.series.length) { return; }
    var units = [];
    data.series.forEach(function (s) { var u = s.unit === 'ratio' ? '%' : s.unit; if (units.indexOf(u) < 0) { units.push(u); } });
    var yAxis = units.map(function (u, i) {
      return {type: 'value', min: 0, position: i === 0 ? 'left' : 'right',
              axisLabel: {formatter: u === '%' ? '{value}%' : '{value}'}};
    });
    var series = data.series.map(function (s, i) {
      var u = s.unit === 'ratio' ? '%' : s.unit;
      var out = {name: s.name, type: (units.length > 1 && i === 0) ? 'bar' : 'line', data: s.data,
                 yAxisIndex: units.indexOf(u), connectNulls: true, smooth: false};
      if (s.target !== null && s.target !== undefined) {
        var t = s.unit === 'ratio' ? Math.round(s.target * 1000) / 10 : s.target;
        out.markLine = {symbol: 'none', lineStyle: {type: 'dashed'}, label: {formatter: s.name + ' ' + t},
                        data: [{yAxis: t}]};
      }
      return out;
    });
    var chart = window.echarts.init(el);
    chart.setOption({tooltip: {trigger: 'axis'}, legend: {top: 0}, grid: {left: 48, right: 48, top: 36, bottom: 28},
                     xAxis: {type: 'category', data: data.months}, yAxis: yAxis, series: series});
    window.addEventListener('resize', function () { chart.resize(); });
  }
  document.addEventListener('DOMContentLoaded', function () {
    if (!window.echarts) { return; }
    var els = document.querySelectorAll('[data-chart]');
    for (var i = 0; i < els.length; i++) { draw(els[i]); }
  });
}());
