/* Yilianti DICOM viewer: plain ES5, no framework, works offline.
 * Frames come from GET {api}/instances/{id}/frames/{n}: uint32 LE header length, ASCII JSON header,
 * then pixels (int16 / uint16 / float32 LE, or rgb8). Modality value = stored * slope + intercept;
 * grey = DICOM PS3.3 C.11.2.1.2.1 linear window (same formula as diagnostics/imaging.py window_level);
 * MONOCHROME1 is inverted. */
(function () {
  'use strict';
  var el = function (id) { return document.getElementById(id); };
  var dataNode = el('viewer-data');
  if (!dataNode) { return; }
  var data = JSON.parse(dataNode.text || dataNode.textContent);
  var canvas = el('viewer-canvas');
  var ctx = canvas.getContext('2d');
  var off = document.createElement('canvas');
  var offCtx = off.getContext('2d');
  var state = {
    series: 0, index: 0, header: null, pixels: null, image: null,
    wc: null, ww: null, userWindow: false, tool: 'wl', points: [], cache: {}, scale: 1, loading: null
  };

  function windowLevel(value, center, width) {
    if (width < 1) { width = 1; }
    var low = center - 0.5 - (width - 1) / 2;
    var high = center - 0.5 + (width - 1) / 2;
    if (value <= low) { return 0; }
    if (value > high) { return 255; }
    return Math.round(((value - (center - 0.5)) / (width - 1) + 0.5) * 255);
  }

  function distanceMm(p1, p2, spacing) {
    var dy = (p2[1] - p1[1]) * spacing[0];
    var dx = (p2[0] - p1[0]) * spacing[1];
    return Math.sqrt(dx * dx + dy * dy);
  }

  function message(text) {
    var m = el('viewer-message');
    m.style.display = text ? 'block' : 'none';
    m.innerHTML = '';
    if (text) { m.appendChild(document.createTextNode(text)); }
  }

  function asciiText(bytes) {
    var out = '';
    var i;
    for (i = 0; i < bytes.length; i += 4096) {
      out += String.fromCharCode.apply(null, Array.prototype.slice.call(bytes.subarray(i, i + 4096)));
    }
    return out;
  }

  function parseFrame(buf) {
    var n = new DataView(buf).getUint32(0, true);
    var header = JSON.parse(asciiText(new Uint8Array(buf, 4, n)));
    var offset = 4 + n;
    var count = header.rows * header.columns;
    var pixels;
    if (header.dtype === 'int16') { pixels = new Int16Array(buf, offset, count); }
    else if (header.dtype === 'uint16') { pixels = new Uint16Array(buf, offset, count); }
    else if (header.dtype === 'float32') { pixels = new Float32Array(buf, offset, count); }
    else { pixels = new Uint8Array(buf, offset, count * 3); }
    return { header: header, pixels: pixels };
  }

  function images() { return data.series[state.series].images; }

  function fetchFrame(img, done) {
    var key = img.instance_id + ':' + img.frame;
    if (state.cache[key]) { done(null, state.cache[key]); return; }
    var xhr = new XMLHttpRequest();
    xhr.open('GET', data.api + '/instances/' + img.instance_id + '/frames/' + img.frame, true);
    xhr.responseType = 'arraybuffer';
    xhr.onload = function () {
      if (xhr.status === 200) {
        state.cache[key] = parseFrame(xhr.response);
        done(null, state.cache[key]);
      } else {
        var text = '';
        try { text = JSON.parse(asciiUtf8(xhr.response)).message; } catch (e) { text = 'HTTP ' + xhr.status; }
        done(text || ('HTTP ' + xhr.status));
      }
    };
    xhr.onerror = function () { done('网络错误 (network error)'); };
    xhr.send();
  }

  function asciiUtf8(buf) {
    var s = asciiText(new Uint8Array(buf));
    try { return decodeURIComponent(escape(s)); } catch (e) { return s; }
  }

  function render() {
    var f = state.image;
    if (!f) { return; }
    var h = f.header;
    var w = h.columns;
    var rows = h.rows;
    if (off.width !== w || off.height !== rows) { off.width = w; off.height = rows; }
    var out = offCtx.createImageData(w, rows);
    var d = out.data;
    var p = f.pixels;
    var i;
    var j;
    if (h.dtype === 'rgb8') {
      for (i = 0, j = 0; i < w * rows; i++, j += 3) {
        d[i * 4] = p[j]; d[i * 4 + 1] = p[j + 1]; d[i * 4 + 2] = p[j + 2]; d[i * 4 + 3] = 255;
      }
    } else {
      var slope = h.slope;
      var intercept = h.intercept;
      var center = state.wc;
      var width = state.ww < 1 ? 1 : state.ww;
      var low = center - 0.5 - (width - 1) / 2;
      var high = center - 0.5 + (width - 1) / 2;
      var invert = h.invert;
      var g;
      var v;
      for (i = 0; i < w * rows; i++) {
        v = p[i] * slope + intercept;
        if (v <= low) { g = 0; } else if (v > high) { g = 255; }
        else { g = Math.round(((v - (center - 0.5)) / (width - 1) + 0.5) * 255); }
        if (invert) { g = 255 - g; }
        j = i * 4;
        d[j] = g; d[j + 1] = g; d[j + 2] = g; d[j + 3] = 255;
      }
    }
    offCtx.putImageData(out, 0, 0);
    state.rendered = out;
    var maxSide = 512;
    state.scale = Math.min(maxSide / w, maxSide / rows);
    canvas.width = Math.round(w * state.scale);
    canvas.height = Math.round(rows * state.scale);
    ctx.imageSmoothingEnabled = true;
    ctx.drawImage(off, 0, 0, canvas.width, canvas.height);
    drawMeasure();
    readouts();
  }

  function drawMeasure() {
    var pts = state.points;
    if (!pts.length) { return; }
    ctx.strokeStyle = '#ffd33d';
    ctx.fillStyle = '#ffd33d';
    ctx.lineWidth = 2;
    var k;
    for (k = 0; k < pts.length; k++) {
      ctx.fillRect(pts[k][0] * state.scale - 3, pts[k][1] * state.scale - 3, 6, 6);
    }
    if (pts.length === 2) {
      ctx.beginPath();
      ctx.moveTo(pts[0][0] * state.scale, pts[0][1] * state.scale);
      ctx.lineTo(pts[1][0] * state.scale, pts[1][1] * state.scale);
      ctx.stroke();
    }
  }

  function readouts() {
    var list = images();
    el('slice-info').innerHTML = (state.index + 1) + ' / ' + list.length;
    var h = state.image && state.image.header;
    el('wl-info').innerHTML = h && h.dtype !== 'rgb8' ?
      'W ' + Math.round(state.ww) + ' L ' + Math.round(state.wc) : '';
    canvas.setAttribute('data-index', String(state.index));
    canvas.setAttribute('data-wc', String(state.wc));
    canvas.setAttribute('data-ww', String(state.ww));
  }

  function show(index) {
    var list = images();
    if (index < 0) { index = 0; }
    if (index > list.length - 1) { index = list.length - 1; }
    state.index = index;
    el('slice-slider').value = String(index);
    var img = list[index];
    state.loading = img;
    fetchFrame(img, function (err, f) {
      if (state.loading !== img) { return; }
      if (err) { message(err); state.image = null; readouts(); return; }
      message('');
      state.image = f;
      if (!state.userWindow) { state.wc = f.header.window_center; state.ww = f.header.window_width; }
      render();
      canvas.setAttribute('data-loaded', String(index));
      if (index + 1 < list.length) { fetchFrame(list[index + 1], function () {}); }
    });
  }

  function chooseSeries(n) {
    state.series = n;
    state.points = [];
    el('measure-info').innerHTML = '';
    var buttons = el('series-list').getElementsByTagName('button');
    var k;
    for (k = 0; k < buttons.length; k++) {
      buttons[k].className = k === n ? 'secondary active' : 'secondary';
    }
    var slider = el('slice-slider');
    slider.max = String(images().length - 1);
    show(0);
  }

  function setWindow(ww, wc) {
    state.ww = ww; state.wc = wc; state.userWindow = true;
    render();
  }

  // presets
  var presetButtons = document.querySelectorAll('[data-ww]');
  var k;
  for (k = 0; k < presetButtons.length; k++) {
    presetButtons[k].onclick = function () {
      setWindow(parseFloat(this.getAttribute('data-ww')), parseFloat(this.getAttribute('data-wc')));
    };
  }
  el('preset-default').onclick = function () {
    state.userWindow = false;
    if (state.image) { state.wc = state.image.header.window_center; state.ww = state.image.header.window_width; }
    render();
  };
  el('tool-measure').onclick = function () {
    state.tool = state.tool === 'measure' ? 'wl' : 'measure';
    this.className = state.tool === 'measure' ? 'secondary active' : 'secondary';
    state.points = [];
    render();
  };
  var seriesButtons = el('series-list').getElementsByTagName('button');
  for (k = 0; k < seriesButtons.length; k++) {
    seriesButtons[k].onclick = function () { chooseSeries(parseInt(this.getAttribute('data-series'), 10)); };
  }

  // scrolling: slider, wheel, keys
  var slider = el('slice-slider');
  slider.onchange = slider.oninput = function () { show(parseInt(slider.value, 10)); };
  function wheel(e) {
    e = e || window.event;
    var delta = e.deltaY || (e.detail ? e.detail : -(e.wheelDelta || 0));
    show(state.index + (delta > 0 ? 1 : -1));
    if (e.preventDefault) { e.preventDefault(); }
    return false;
  }
  if ('onwheel' in canvas) { canvas.addEventListener('wheel', wheel, false); }
  else { canvas.addEventListener('mousewheel', wheel, false); canvas.addEventListener('DOMMouseScroll', wheel, false); }
  canvas.addEventListener('keydown', function (e) {
    var code = e.keyCode;
    if (code === 40 || code === 34 || code === 39 || code === 74) { show(state.index + 1); e.preventDefault(); }
    else if (code === 38 || code === 33 || code === 37 || code === 75) { show(state.index - 1); e.preventDefault(); }
  }, false);

  // mouse: drag = window/level, or two clicks = distance
  function imagePoint(e) {
    var r = canvas.getBoundingClientRect();
    return [(e.clientX - r.left) / state.scale, (e.clientY - r.top) / state.scale];
  }
  var drag = null;
  canvas.addEventListener('mousedown', function (e) {
    canvas.focus();
    if (!state.image) { return; }
    if (state.tool === 'measure') {
      if (state.points.length >= 2) { state.points = []; }
      state.points.push(imagePoint(e));
      if (state.points.length === 2) {
        var sp = state.image.header.pixel_spacing;
        var info = sp ? distanceMm(state.points[0], state.points[1], sp).toFixed(1) + ' mm' :
          distanceMm(state.points[0], state.points[1], [1, 1]).toFixed(1) + ' px (无像素间距)';
        el('measure-info').innerHTML = info;
      }
      render();
      return;
    }
    drag = { x: e.clientX, y: e.clientY, ww: state.ww, wc: state.wc };
    e.preventDefault();
  }, false);
  document.addEventListener('mousemove', function (e) {
    if (!drag || !state.image) { return; }
    var h = state.image.header;
    var range = Math.max(h.max - h.min, 256);
    var k2 = range / 512;
    setWindow(Math.max(1, drag.ww + (e.clientX - drag.x) * k2), drag.wc + (e.clientY - drag.y) * k2);
  }, false);
  document.addEventListener('mouseup', function () { drag = null; }, false);

  window.ylViewer = {
    state: state, windowLevel: windowLevel, distanceMm: distanceMm, show: show,
    pixelAt: function (x, y) {
      var d = state.rendered;
      return d ? d.data[(y * d.width + x) * 4] : null;
    },
    storedAt: function (x, y) {
      var f = state.image;
      return f ? f.pixels[y * f.header.columns + x] : null;
    }
  };
  if (data.series.length) { chooseSeries(0); }
}());
