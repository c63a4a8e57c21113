//! The map with 20,000 depots in one jurisdiction, measured in a real browser: time from
//! navigation until the region, depot and team layers are drawn (`data-drawn-ms`, set by
//! `assets/web/map.js` in the frame after the layers were added). Not part of the normal run
//! (it inserts 20,000 depots); the documented command is
//! `cargo test --test api browser_map_scale -- --ignored --nocapture`.

use std::time::{Duration, Instant};

use fantoccini::Locator;
use yingji::auth::Role;

use crate::browser::{Steps, browser};
use crate::common::*;
use crate::console::create_user;

const DEPOTS: usize = 20_000;

async fn insert_depots(app: &TestApp) {
    let now = yingji::time::Timestamp(app.clock.now_utc());
    let regions = [BANNER, MANDULATU, CHAGANAOBAO];
    for chunk in (0..DEPOTS).collect::<Vec<_>>().chunks(500) {
        let mut sql = String::from(
            "INSERT INTO depots (code, name, region_code, kind, lon, lat, created_at, updated_at) VALUES ",
        );
        for (i, _) in chunk.iter().enumerate() {
            let b = 2 + i * 5;
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("(${}, ${}, ${}, 'village_point', ${}, ${}, $1, $1)", b, b + 1, b + 2, b + 3, b + 4));
        }
        let mut tx = app.state.db.begin().await.unwrap();
        yingji::with_tx!(&mut tx, |c| {
            let mut q = sqlx::query(&sql).bind(now);
            for &n in chunk {
                // A deterministic spread over about 2° × 1.5° around the banner.
                let lon = 112.6 + (n % 200) as f64 * 0.01;
                let lat = 43.0 + (n / 200) as f64 * 0.015;
                q = q
                    .bind(format!("SCALE{n:05}"))
                    .bind(format!("压测储备点{n}"))
                    .bind(regions[n % 3])
                    .bind(lon)
                    .bind(lat);
            }
            q.execute(c).await.map(|_| ())
        })
        .unwrap();
        tx.commit().await.unwrap();
    }
}

#[tokio::test]
#[ignore = "benchmark: cargo test --test api browser_map_scale -- --ignored --nocapture"]
async fn browser_map_scale_20000_depots_are_drawn() {
    let Some((_driver, c, dir)) = browser().await else { return };
    let app = TestApp::spawn().await;
    insert_depots(&app).await;
    create_user(&app, "zhang", Role::Admin, BANNER).await;
    let s = Steps { c, dir, base: app.base.clone() };
    s.login("zhang").await;
    let mut figures = Vec::new();
    for round in 0..5 {
        let started = Instant::now();
        s.goto("map", "/map").await;
        let r = s.c.wait().at_most(Duration::from_secs(120)).for_element(Locator::Css("#map[data-drawn-ms]")).await;
        let el = s.check("drawn", r).await;
        let drawn: f64 = el.attr("data-drawn-ms").await.unwrap().unwrap_or_default().parse().unwrap();
        // Where the time goes: the depot layer's request (server and transfer) as the browser saw it.
        let r = s
            .c
            .execute(
                "var e = performance.getEntriesByType('resource').filter(function (x) { return x.name.indexOf('depots.geojson') >= 0; })[0];
                 return e ? [Math.round(e.startTime), Math.round(e.responseStart - e.startTime), Math.round(e.responseEnd - e.startTime), e.encodedBodySize] : [];",
                vec![],
            )
            .await;
        let geo = s.check("timing", r).await;
        eprintln!(
            "round {round}: layers drawn {drawn:.0} ms after navigation (wall {:?}); depots.geojson [requested at, first byte after, last byte after (ms), bytes] = {geo}",
            started.elapsed()
        );
        figures.push(drawn);
    }
    s.shot("map-20000-depots").await;
    // Responsiveness: a zoom in and out is answered (the page's main thread is free).
    let t = Instant::now();
    s.click("zoom-in", ".leaflet-control-zoom-in").await;
    s.click("zoom-out", ".leaflet-control-zoom-out").await;
    let zoom = t.elapsed();
    figures.sort_by(f64::total_cmp);
    eprintln!(
        "MAP {DEPOTS} depots: drawn after navigation median {:.0} ms, max {:.0} ms (5 loads); zoom in+out clicks answered in {:?}",
        figures[2], figures[4], zoom
    );
    let _ = s.c.close().await;
}
