//! The `token` and `user` subcommands: issuing and revoking API tokens, creating users and
//! setting their passwords.

use super::{TokenCommand, UserCommand, describe};
use crate::app::{self, Config};
use crate::audit::Actor;
use crate::auth::Role;
use crate::clock::SharedClock;
use crate::regions::RegionCode;
use crate::time::Timestamp;

pub(super) async fn token(config: Config, clock: SharedClock, cmd: TokenCommand) -> anyhow::Result<()> {
    let db = app::prepare_db(&config, &clock).await?;
    let now = Timestamp(clock.now());
    let result = match cmd {
        TokenCommand::Create { name, role, region, label } => {
            let role = Role::parse(&role).ok_or_else(|| anyhow::anyhow!("角色 {role} 无效"))?;
            let region = RegionCode::parse(&region).map_err(|m| anyhow::anyhow!(m))?;
            match crate::auth::tokens::issue(&db, &Actor::cli(), now, &name, role, &region, label.as_deref()).await {
                Ok(t) => {
                    println!(
                        "已为用户 {}（{}，辖区 {}）签发令牌 #{}。令牌只显示这一次，请妥善保存：",
                        t.info.user_name,
                        role.label(),
                        region,
                        t.info.id
                    );
                    println!("{}", t.token);
                    Ok(())
                }
                Err(e) => Err(describe(e)),
            }
        }
        TokenCommand::List => {
            let (items, _) = crate::auth::tokens::list(&db, ("000000000000", "999999999999"), 100_000, 0).await?;
            println!("{:>5}  {:<20} {:<9} {:<13} {:<26} 状态", "编号", "用户", "角色", "辖区", "签发时间");
            for t in items {
                let state = match t.revoked_at {
                    Some(at) => format!("已吊销 {}", at.local_display()),
                    None => "有效".to_string(),
                };
                println!(
                    "{:>5}  {:<20} {:<9} {:<13} {:<26} {}",
                    t.id,
                    t.user_name,
                    t.role,
                    t.region_code,
                    t.created_at.local_display(),
                    state
                );
            }
            Ok(())
        }
        TokenCommand::Revoke { id } => match crate::auth::tokens::revoke(&db, &Actor::cli(), now, id).await {
            Ok(t) => {
                println!("令牌 #{} 已吊销", t.id);
                Ok(())
            }
            Err(e) => Err(describe(e)),
        },
    };
    db.close().await;
    result
}

/// Reads a password from standard input: prompted without echo on a terminal, else the first
/// line (for scripts: `printf '%s\n' "$PW" | yingji user create …`).
fn read_password() -> anyhow::Result<String> {
    use std::io::{BufRead, IsTerminal};
    let tty = std::io::stdin().is_terminal();
    let stty = |arg: &str| {
        let _ = std::process::Command::new("stty").arg(arg).stdin(std::process::Stdio::inherit()).status();
    };
    if tty {
        eprint!("请输入密码（至少 {} 个字符）：", crate::auth::users::MIN_PASSWORD_CHARS);
        stty("-echo");
    }
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    if tty {
        stty("echo");
        eprintln!();
    }
    read.map_err(|e| anyhow::anyhow!("读取密码失败：{e}"))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

pub(super) async fn user(config: Config, clock: SharedClock, cmd: UserCommand) -> anyhow::Result<()> {
    use crate::auth::users;
    let password = match &cmd {
        UserCommand::Create { .. } | UserCommand::SetPassword { .. } => Some(read_password()?),
        UserCommand::Disable { .. } => None,
    };
    let db = app::prepare_db(&config, &clock).await?;
    let now = Timestamp(clock.now());
    let actor = Actor::cli();
    let pw = password.as_deref().unwrap_or_default();
    let result = match cmd {
        UserCommand::Create { name, role, region } => {
            let role = Role::parse(&role).ok_or_else(|| anyhow::anyhow!("角色 {role} 无效"))?;
            let region = RegionCode::parse(&region).map_err(|m| anyhow::anyhow!(m))?;
            users::create(&db, &actor, now, &name, role, &region, pw).await.map(|u| {
                format!("已创建用户 {}（{}，辖区 {}），可在浏览器登录工作台", u.name, role.label(), u.region_code)
            })
        }
        UserCommand::SetPassword { name } => users::set_password(&db, &actor, now, &name, pw)
            .await
            .map(|u| format!("已为用户 {} 设置新密码，其现有会话已结束", u.name)),
        UserCommand::Disable { name } => users::disable(&db, &actor, now, &name)
            .await
            .map(|u| format!("已停用用户 {}：不能再登录，会话已结束，接口令牌已吊销", u.name)),
    };
    db.close().await;
    println!("{}", result.map_err(describe)?);
    Ok(())
}
