// 事件看板的地图：事件地点，以及资源方案中每个储备库和队伍到事件地点的连线（与地图页同样的样式）。
// 数据在页面里（#event-map 的 data-plan），不向外发请求；未配置底图时显示纯色背景。
(function () {
  'use strict';
  var el = document.getElementById('event-map');
  if (!el || !window.L) return;
  var d = JSON.parse(el.dataset.plan || '{}');
  var here = [d.event.lat, d.event.lon];
  var map = L.map(el, { zoomControl: true }).setView(here, 9);
  if (d.tile_url) {
    L.tileLayer(d.tile_url, { attribution: d.tile_attribution || '', maxZoom: 18 }).addTo(map);
  } else {
    el.classList.add('no-tiles');
  }
  map.attributionControl.setPrefix(false);
  L.control.scale({ imperial: false, metric: true }).addTo(map);
  function esc(s) {
    return String(s == null ? '' : s).replace(/[&<>"']/g, function (c) {
      return { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c];
    });
  }
  var bounds = L.latLngBounds([here]);
  (d.lines || []).forEach(function (l) {
    var at = [l.lat, l.lon];
    var depot = l.kind === 'supply';
    var colour = depot ? '#0969da' : '#8250df';
    L.polyline([here, at], { color: colour, weight: 3, dashArray: '6 4' }).addTo(map)
      .bindTooltip(esc(l.name) + ' ' + Number(l.km).toFixed(1) + ' km', { direction: 'center', className: 'dist' });
    L.circleMarker(at, { radius: depot ? 6 : 7, color: depot ? '#0550ae' : '#6639ba', weight: 2, fillColor: colour, fillOpacity: 0.8 })
      .addTo(map).bindPopup('<strong>' + esc(l.name) + '</strong><br>' + esc(l.what) + '<br>' + esc(l.state));
    bounds.extend(at);
  });
  L.circleMarker(here, { radius: 9, color: '#000', weight: 3, fillColor: '#cf222e', fillOpacity: 1 }).addTo(map)
    .bindTooltip(esc(d.event.title), { permanent: true, direction: 'top' });
  if ((d.lines || []).length) { map.fitBounds(bounds.pad(0.2)); }
  el.dataset.loaded = 'true';
})();
