// 事件上报的选点地图：点选地图填写经纬度；填写经纬度或选择区划时移动标记。
// 不向外发请求；未配置底图时显示纯色背景。没有 JavaScript 时直接填写经纬度或留空（用区划位置）。
(function () {
  'use strict';
  var el = document.getElementById('pick-map');
  if (!el || !window.L) return;
  var lon = document.getElementById('lon');
  var lat = document.getElementById('lat');
  var region = document.getElementById('e-region');
  var start = [Number(el.dataset.lat), Number(el.dataset.lon)];
  var map = L.map(el, { zoomControl: true }).setView(start, 8);
  if (el.dataset.tileUrl) {
    L.tileLayer(el.dataset.tileUrl, { attribution: el.dataset.tileAttribution || '', maxZoom: 18 }).addTo(map);
  } else {
    el.classList.add('no-tiles');
  }
  map.attributionControl.setPrefix(false);
  L.control.scale({ imperial: false, metric: true }).addTo(map);
  var marker = null;
  var regionMark = null;
  function put(at) {
    if (marker) { marker.setLatLng(at); } else {
      marker = L.circleMarker(at, { radius: 9, color: '#000', weight: 3, fillColor: '#cf222e', fillOpacity: 1 }).addTo(map)
        .bindTooltip('事发地点', { direction: 'top' });
    }
  }
  function typed() {
    var x = parseFloat(lon.value), y = parseFloat(lat.value);
    if (isFinite(x) && isFinite(y) && Math.abs(x) <= 180 && Math.abs(y) <= 90) { put([y, x]); return [y, x]; }
    return null;
  }
  function showRegion() {
    var o = region && region.options[region.selectedIndex];
    if (!o || !o.dataset.lon) return;
    var at = [Number(o.dataset.lat), Number(o.dataset.lon)];
    if (regionMark) { regionMark.setLatLng(at); } else {
      regionMark = L.circleMarker(at, { radius: 6, color: '#0b3d91', weight: 2, fillColor: '#fff', fillOpacity: 1 }).addTo(map);
    }
    regionMark.bindTooltip(o.textContent + '（区划位置）');
    if (!typed()) { map.setView(at, 9); }
  }
  map.on('click', function (e) {
    lon.value = e.latlng.lng.toFixed(5);
    lat.value = e.latlng.lat.toFixed(5);
    put(e.latlng);
  });
  lon.addEventListener('change', function () { var at = typed(); if (at) map.panTo(at); });
  lat.addEventListener('change', function () { var at = typed(); if (at) map.panTo(at); });
  if (region) region.addEventListener('change', showRegion);
  showRegion();
  var at = typed();
  if (at) map.setView(at, 9);
  el.dataset.loaded = 'true';
})();
