//! Notifications: an outbox written in the same transaction as whatever causes a notification,
//! a dispatcher that delivers with retries, channels per region (in-app inbox, JSON webhook,
//! DingTalk and WeCom robots).

pub mod channels;
pub mod dispatch;
pub mod inbox;
pub mod outbox;
pub mod routes;
