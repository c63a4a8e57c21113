// 地图页：区划得分、储备库和队伍图层，以及"最近的物资和队伍"查询。
// 数据全部来自本服务（/map/regions.json 与 /api/v1/… 的 GET 接口，凭登录会话）。
(function () {
  'use strict';
  var el = document.getElementById('map');
  if (!el || !window.L) return;

  var canvas = L.canvas({ padding: 0.5 });
  var map = L.map(el, { preferCanvas: true, zoomControl: true }).setView(
    [parseFloat(el.dataset.lat), parseFloat(el.dataset.lon)], parseInt(el.dataset.zoom, 10) || 7);
  if (el.dataset.tileUrl) {
    L.tileLayer(el.dataset.tileUrl, { attribution: el.dataset.tileAttribution || '', maxZoom: 18 }).addTo(map);
  } else {
    el.classList.add('no-tiles');
  }
  map.attributionControl.setPrefix(false);
  L.control.scale({ imperial: false, metric: true }).addTo(map);

  var coords = document.getElementById('coords');
  function fmt(n) { return n.toFixed(5); }
  map.on('mousemove', function (e) {
    coords.textContent = '经度 ' + fmt(e.latlng.lng) + '，纬度 ' + fmt(e.latlng.lat);
  });

  function esc(s) {
    return String(s == null ? '' : s).replace(/[&<>"']/g, function (c) {
      return { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c];
    });
  }
  function scoreClass(score) {
    if (score == null) return 'none';
    if (score >= 90) return 'good';
    if (score >= 75) return 'fair';
    if (score >= 60) return 'poor';
    return 'bad';
  }
  var colours = { good: '#1a7f37', fair: '#9a6700', poor: '#bc4c00', bad: '#cf222e', none: '#6e7781' };

  function getJSON(url) {
    return fetch(url, { credentials: 'same-origin', headers: { Accept: 'application/json' } }).then(function (r) {
      return r.json().then(function (body) {
        if (!r.ok) { throw new Error(body.detail || ('请求失败：' + r.status)); }
        return body;
      });
    });
  }

  var regions = L.geoJSON(null, {
    style: function (f) {
      var c = colours[scoreClass(f.properties.score)];
      return { color: c, weight: 2, fillColor: c, fillOpacity: 0.25 };
    },
    pointToLayer: function (f, ll) {
      var c = colours[scoreClass(f.properties.score)];
      return L.circleMarker(ll, { renderer: canvas, radius: 9, color: c, weight: 2, fillColor: c, fillOpacity: 0.6 });
    },
    onEachFeature: function (f, layer) {
      var p = f.properties;
      var s = p.score == null ? '未检查' : ('得分 ' + p.score);
      layer.bindTooltip(esc(p.name) + '：' + s);
      layer.bindPopup('<strong>' + esc(p.name) + '</strong>（' + esc(p.level_label) + '）<br>准备情况' + s);
    }
  }).addTo(map);

  var depotById = {};
  var depots = L.geoJSON(null, {
    pointToLayer: function (f, ll) {
      return L.circleMarker(ll, { renderer: canvas, radius: 5, color: '#0550ae', weight: 1, fillColor: '#0969da', fillOpacity: 0.8 });
    },
    onEachFeature: function (f, layer) {
      depotById[f.id] = f;
      layer.bindPopup(function () {
        var p = f.properties;
        var rows = (p.stock || []).filter(function (s) { return s.physical > 0 || s.agreement > 0; }).map(function (s) {
          return '<li>' + esc(s.name) + '：' + s.physical + ' ' + esc(s.unit) + (s.agreement ? '（协议 ' + s.agreement + '）' : '') + '</li>';
        }).join('');
        return '<strong>' + esc(p.name) + '</strong>（' + esc(p.kind_label) + '）<br>' + esc(p.address || '') +
          (rows ? '<ul class="popup-list">' + rows + '</ul>' : '<br>无库存');
      });
    }
  }).addTo(map);

  var teamByCode = {};
  var teams = L.geoJSON(null, {
    pointToLayer: function (f, ll) {
      return L.circleMarker(ll, { renderer: canvas, radius: 6, color: '#6639ba', weight: 2, fillColor: '#8250df', fillOpacity: 0.8 });
    },
    onEachFeature: function (f, layer) {
      teamByCode[f.properties.code] = f;
      layer.bindPopup(function () {
        var p = f.properties;
        var sp = (p.specialties || []).map(function (s) {
          return '<li>' + esc(s.label) + (s.grade ? '（' + s.grade + '级）' : '') + '</li>';
        }).join('');
        return '<strong>' + esc(p.name) + '</strong>（' + esc(p.org_type_label) + '）<br>可用队员 ' + p.available_members + ' 人' +
          (sp ? '<ul class="popup-list">' + sp + '</ul>' : '');
      });
    }
  }).addTo(map);

  var layerControl = L.control.layers(null, { '区划得分': regions, '储备库': depots, '队伍': teams }, { collapsed: false }).addTo(map);

  // Active warnings: the regions each covers, coloured by the highest level covering them (the
  // level is also written in the tooltip, so colour is never the only sign).
  var levelColours = { 1: '#c00000', 2: '#e07000', 3: '#d4b000', 4: '#1e64ff' };
  var levelNames = { 1: '一级（红色）', 2: '二级（橙色）', 3: '三级（黄色）', 4: '四级（蓝色）' };
  var warningLayer = L.geoJSON(null, {
    style: function (f) {
      var c = levelColours[f.properties.warning_level];
      return { color: c, weight: 3, dashArray: '6 4', fillColor: c, fillOpacity: 0.35 };
    },
    pointToLayer: function (f, ll) {
      var c = levelColours[f.properties.warning_level];
      return L.circleMarker(ll, { renderer: canvas, radius: 13, color: c, weight: 3, fillColor: c, fillOpacity: 0.35 });
    },
    onEachFeature: function (f, layer) {
      var p = f.properties;
      layer.bindTooltip(esc(p.name) + '：' + levelNames[p.warning_level] + '预警 ' + esc(p.warning_headlines));
    }
  });
  function loadWarnings(regionData) {
    return getJSON('/api/v1/warnings?active=true&limit=100').then(function (list) {
      return Promise.all(list.items.map(function (w) {
        return getJSON('/api/v1/warnings/' + w.id + '/acks').then(function (acks) {
          return { warning: w, regions: acks.items.map(function (a) { return a.region_code; }) };
        });
      }));
    }).then(function (covered) {
      var byRegion = {};
      covered.forEach(function (c) {
        c.regions.forEach(function (code) {
          var r = byRegion[code] || (byRegion[code] = { level: 9, headlines: [] });
          r.level = Math.min(r.level, c.warning.level);
          r.headlines.push(c.warning.headline);
        });
      });
      var features = regionData.features.filter(function (f) { return byRegion[f.properties.code]; }).map(function (f) {
        var r = byRegion[f.properties.code];
        var props = Object.assign({}, f.properties, { warning_level: r.level, warning_headlines: r.headlines.join('；') });
        return Object.assign({}, f, { properties: props });
      });
      warningLayer.addData({ type: 'FeatureCollection', features: features });
      warningLayer.addTo(map);
      layerControl.addOverlay(warningLayer, '当前预警（' + covered.length + '）');
      el.dataset.warnings = String(features.length);
    });
  }

  var loaded = Promise.all([
    getJSON('/map/regions.json').then(function (d) { regions.addData(d); return loadWarnings(d); }),
    getJSON('/api/v1/depots.geojson').then(function (d) { depots.addData(d); }),
    getJSON('/api/v1/teams.geojson').then(function (d) { teams.addData(d); })
  ]).then(function () {
    el.dataset.loaded = 'true';
    // Time from navigation until the layers are drawn (the canvas paints in the next frame).
    window.requestAnimationFrame(function () { el.dataset.drawnMs = String(Math.round(performance.now())); });
  }, function (e) {
    el.dataset.loaded = 'error';
    coords.textContent = '图层加载失败：' + e.message;
  });

  // The question.
  var form = document.getElementById('nearest-form');
  var lon = document.getElementById('lon');
  var lat = document.getElementById('lat');
  var result = document.getElementById('nearest-result');
  var answer = L.layerGroup().addTo(map);
  var here = null;

  function setPoint(lng, la) {
    lon.value = fmt(lng);
    lat.value = fmt(la);
    if (here) { here.setLatLng([la, lng]); } else {
      here = L.circleMarker([la, lng], { radius: 8, color: '#000', weight: 3, fillColor: '#fff', fillOpacity: 1 }).addTo(map);
      here.bindTooltip('需求地点');
    }
  }
  map.on('click', function (e) { setPoint(e.latlng.lng, e.latlng.lat); });
  document.getElementById('place').addEventListener('change', function () {
    if (!this.value) return;
    var p = this.value.split(',');
    setPoint(parseFloat(p[0]), parseFloat(p[1]));
    map.setView([parseFloat(p[1]), parseFloat(p[0])], Math.max(map.getZoom(), 9));
  });

  function line(from, to, colour, label) {
    L.polyline([from, to], { color: colour, weight: 3, dashArray: '6 4' }).addTo(answer)
      .bindTooltip(label, { permanent: true, direction: 'center', className: 'dist' });
  }

  form.addEventListener('submit', function (ev) {
    ev.preventDefault();
    var lng = parseFloat(lon.value), la = parseFloat(lat.value);
    if (!isFinite(lng) || !isFinite(la)) { result.innerHTML = '<p class="alert" role="alert">请先选择地点或输入经纬度</p>'; return; }
    setPoint(lng, la);
    answer.clearLayers();
    var item = document.getElementById('item');
    var spec = document.getElementById('specialty');
    var qty = document.getElementById('quantity').value;
    var want = parseInt(document.getElementById('teams').value, 10) || 1;
    var maxKm = document.getElementById('max_km').value;
    var here2 = [la, lng];
    var jobs = [];
    if (item.value) {
      jobs.push(function () { return getJSON('/api/v1/supplies/nearest?item=' + encodeURIComponent(item.value) + '&quantity=' + encodeURIComponent(qty) +
        '&lon=' + lng + '&lat=' + la).then(function (n) {
        var rows = n.allocations.map(function (a) {
          var d = depotById[a.depot_id];
          if (d) { line(here2, [d.geometry.coordinates[1], d.geometry.coordinates[0]], '#0969da', a.depot_name + ' ' + a.distance_km.toFixed(1) + ' km'); }
          return '<tr><td>' + esc(a.depot_name) + '</td><td>' + a.distance_km.toFixed(1) + '</td><td>' + a.take + '</td></tr>';
        }).join('');
        var fb = n.agreement.map(function (a) {
          return '<li>协议储备 ' + esc(a.depot_name) + '（' + a.distance_km.toFixed(1) + ' km）可补 ' + a.take + ' ' + esc(n.unit) + '</li>';
        }).join('');
        return '<h3>' + esc(n.item_name) + '：需要 ' + n.requested + ' ' + esc(n.unit) + '</h3>' +
          '<p class="' + (n.shortfall > 0 ? 'alert' : 'ok') + '">已从最近的储备库分配 ' + n.allocated + ' ' + esc(n.unit) +
          (n.shortfall > 0 ? '，<strong>缺口 ' + n.shortfall + ' ' + esc(n.unit) + '</strong>' : '，数量充足') + '</p>' +
          (rows ? '<table class="table"><caption class="sr-only">物资分配</caption><thead><tr><th scope="col">储备库</th><th scope="col">距离 km</th><th scope="col">调用数量</th></tr></thead><tbody>' + rows + '</tbody></table>' : '') +
          (fb ? '<ul class="plain small">' + fb + '</ul>' : '');
      }); });
    }
    if (spec.value) {
      var mm = document.getElementById('min_members').value || 1;
      jobs.push(function () { return getJSON('/api/v1/teams/nearest?specialty=' + encodeURIComponent(spec.value) + '&min_members=' + encodeURIComponent(mm) +
        '&max_km=' + encodeURIComponent(maxKm) + '&lon=' + lng + '&lat=' + la).then(function (n) {
        var chosen = n.items.slice(0, want);
        var rows = chosen.map(function (t) {
          var f = teamByCode[t.team_code];
          if (f) { line(here2, [f.geometry.coordinates[1], f.geometry.coordinates[0]], '#8250df', t.name + ' ' + t.distance_km.toFixed(1) + ' km'); }
          return '<tr><td>' + esc(t.name) + '</td><td>' + t.distance_km.toFixed(1) + '</td><td>' + t.qualified_members + '</td></tr>';
        }).join('');
        var label = spec.options[spec.selectedIndex].text;
        var short = want - chosen.length;
        return '<h3>' + esc(label) + '队伍：需要 ' + want + ' 支</h3>' +
          '<p class="' + (short > 0 ? 'alert' : 'ok') + '">' + maxKm + ' km 内找到 ' + chosen.length + ' 支' +
          (short > 0 ? '，<strong>缺 ' + short + ' 支</strong>' : '') + '</p>' +
          (rows ? '<table class="table"><caption class="sr-only">最近的队伍</caption><thead><tr><th scope="col">队伍</th><th scope="col">距离 km</th><th scope="col">合格队员</th></tr></thead><tbody>' + rows + '</tbody></table>' : '');
      }); });
    }
    if (!jobs.length) { result.innerHTML = '<p class="alert" role="alert">请选择需要的物资或队伍专业</p>'; return; }
    result.innerHTML = '<p class="muted">查询中…</p>';
    loaded.then(function () { return Promise.all(jobs.map(function (j) { return j(); })); }).then(function (parts) {
      result.innerHTML = parts.join('');
      result.dataset.done = 'true';
    }, function (e) {
      result.innerHTML = '<p class="alert" role="alert">查询失败：' + esc(e.message) + '</p>';
      result.dataset.done = 'error';
    });
  });
})();
