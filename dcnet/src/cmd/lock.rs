//! `dcnet lock init|request|approve|apply|security`: the meter's program lock.
//!
//! The meter's lock directory holds `lock.toml` (public, meter-signed), `tariff.toml` (the
//! tariff in force, bound to the lock by its SHA-256) and `shares/<holder>.toml` (one sealed
//! share per holder, to hand out). `apply` verifies everything before it writes anything, so
//! a refused request leaves every file as it was.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result, bail};
use lock::flow::{self, Approval, Holder, LockRecord, Locked, Request, Role, ShareEnvelope};
use lock::security::{security_degrees, smallest_threshold};
use lock::{PublicIdentity, SecretIdentity, Tariff, os_rng};

use crate::cli::{
    LockApplyArgs, LockApproveArgs, LockInitConfig, LockRequestArgs, LockSecurityConfig,
};
use crate::cmd::files::{read_text, replace, sibling, write_new};

const LOCK_FILE: &str = "lock.toml";
const TARIFF_FILE: &str = "tariff.toml";
const SHARES_DIR: &str = "shares";

fn load_secret(path: &Path) -> Result<SecretIdentity> {
    let text = zeroize::Zeroizing::new(read_text(path, "secret identity")?);
    SecretIdentity::from_toml(&text).with_context(|| format!("secret identity {}", path.display()))
}

fn load_public(path: &Path) -> Result<PublicIdentity> {
    let text = read_text(path, "public identity")?;
    PublicIdentity::from_toml(&text).with_context(|| format!("public identity {}", path.display()))
}

fn load_lock(path: &Path) -> Result<LockRecord> {
    let text = read_text(path, "lock")?;
    LockRecord::from_toml(&text).with_context(|| format!("lock {}", path.display()))
}

fn load_request(path: &Path) -> Result<Request> {
    let text = read_text(path, "request")?;
    Request::from_toml(&text).with_context(|| format!("request {}", path.display()))
}

/// Writes a lock's files into `state`. New share files are written beside the old ones and
/// swapped in last, after `tariff.toml` and `lock.toml`: an interrupted write leaves a lock
/// whose tariff digest no longer matches, which the next `apply` reports instead of using.
fn write_state(state: &Path, locked: &Locked, tariff_text: &str) -> Result<()> {
    fs::create_dir_all(state).with_context(|| format!("cannot create {}", state.display()))?;
    let shares = state.join(SHARES_DIR);
    let new_shares = sibling(&shares, ".new");
    if new_shares.exists() {
        fs::remove_dir_all(&new_shares)
            .with_context(|| format!("cannot clear {}", new_shares.display()))?;
    }
    for envelope in &locked.envelopes {
        let path = new_shares.join(format!("{}.toml", envelope.holder()));
        write_new(&path, &envelope.to_toml(), true, false)?;
    }
    replace(&state.join(TARIFF_FILE), tariff_text)?;
    replace(&state.join(LOCK_FILE), &locked.record.to_toml())?;
    let old_shares = sibling(&shares, ".old");
    if shares.exists() {
        if old_shares.exists() {
            fs::remove_dir_all(&old_shares)
                .with_context(|| format!("cannot clear {}", old_shares.display()))?;
        }
        fs::rename(&shares, &old_shares)
            .with_context(|| format!("cannot move {}", shares.display()))?;
    }
    fs::rename(&new_shares, &shares)
        .with_context(|| format!("cannot write {}", shares.display()))?;
    if old_shares.exists() {
        fs::remove_dir_all(&old_shares)
            .with_context(|| format!("cannot remove {}", old_shares.display()))?;
    }
    Ok(())
}

fn describe(record: &LockRecord) -> String {
    format!(
        "lock {} generation {}: t = {} of n = {} holders",
        record.lock_id(),
        record.generation(),
        record.threshold(),
        record.holders().len()
    )
}

pub fn init(config: LockInitConfig) -> Result<()> {
    let meter = load_secret(&config.key)?;
    let tariff_text = read_text(&config.tariff, "tariff")?;
    Tariff::from_toml(&tariff_text)
        .with_context(|| format!("tariff {}", config.tariff.display()))?;
    let mut holders = vec![Holder {
        role: Role::User,
        identity: load_public(&config.user)?,
    }];
    for company in &config.companies {
        holders.push(Holder {
            role: Role::Company,
            identity: load_public(company)?,
        });
    }
    let occupied = fs::read_dir(&config.state).is_ok_and(|mut entries| entries.next().is_some());
    if occupied && !config.force {
        bail!(
            "{} is not empty; pass --force to replace the lock in it",
            config.state.display()
        );
    }
    let locked = flow::lock(
        &meter,
        &tariff_text,
        holders,
        config.threshold,
        0,
        &mut os_rng(),
    )
    .context("cannot lock")?;
    write_state(&config.state, &locked, &tariff_text)?;
    println!("{}", describe(&locked.record));
    for (holder, envelope) in locked.record.holders().iter().zip(&locked.envelopes) {
        println!(
            "  share {:>3}  {:<8} {:<20} {}",
            envelope.index(),
            holder.role,
            holder.identity.name(),
            config
                .state
                .join(SHARES_DIR)
                .join(format!("{}.toml", envelope.holder()))
                .display()
        );
    }
    println!("hand each holder its share file; the key and the shares are gone from the meter");
    Ok(())
}

pub fn request(args: LockRequestArgs) -> Result<()> {
    let requester = load_secret(&args.key)?;
    let record = load_lock(&args.lock)?;
    let tariff_text = read_text(&args.tariff, "tariff")?;
    Tariff::from_toml(&tariff_text).with_context(|| format!("tariff {}", args.tariff.display()))?;
    let request = flow::request(
        &requester,
        &record,
        &tariff_text,
        &args.reason,
        &mut os_rng(),
    )
    .context("cannot make the request")?;
    write_new(&args.out, &request.to_toml(), true, false)?;
    println!(
        "request {} by {:?} for {}\nwritten to {}",
        hex_prefix(&request.digest()),
        request.requester(),
        describe(&record),
        args.out.display()
    );
    Ok(())
}

pub fn approve(args: LockApproveArgs) -> Result<()> {
    let holder = load_secret(&args.key)?;
    let meter = load_public(&args.meter)?;
    let record = load_lock(&args.lock)?;
    let share_text = read_text(&args.share, "share file")?;
    let envelope = ShareEnvelope::from_toml(&share_text)
        .with_context(|| format!("share file {}", args.share.display()))?;
    let request = load_request(&args.request)?;
    let approval = flow::approve(&holder, &meter, &record, &envelope, &request)
        .with_context(|| format!("cannot approve {}", args.request.display()))?;
    write_new(&args.out, &approval.to_toml(), true, false)?;
    println!(
        "{:?} approves request {} by {:?}: {}",
        approval.holder(),
        hex_prefix(&request.digest()),
        request.requester(),
        request.reason().lines().next().unwrap_or_default()
    );
    if let Ok(tariff) = Tariff::from_toml(request.tariff_text()) {
        for period in tariff.periods() {
            let hours: Vec<String> = period.hours().iter().map(ToString::to_string).collect();
            println!(
                "  {:<12} {} {}/kWh  {}",
                period.name(),
                period.price(),
                tariff.currency(),
                hours.join(", ")
            );
        }
    }
    println!("written to {}", args.out.display());
    Ok(())
}

pub fn apply(args: LockApplyArgs) -> Result<()> {
    let meter = load_secret(&args.key)?;
    let record = load_lock(&args.state.join(LOCK_FILE))?;
    let current = read_text(&args.state.join(TARIFF_FILE), "tariff")?;
    let request = load_request(&args.request)?;
    let mut approvals = Vec::with_capacity(args.approvals.len());
    for path in &args.approvals {
        let text = read_text(path, "approval")?;
        let approval =
            Approval::from_toml(&text).with_context(|| format!("approval {}", path.display()))?;
        approvals.push((path.display().to_string(), approval));
    }
    let applied = flow::apply(
        &meter,
        &record,
        &current,
        &request,
        &approvals,
        &mut os_rng(),
    )
    .context("request refused, nothing changed")?;
    write_state(&args.state, &applied.locked, request.tariff_text())?;
    println!(
        "applied request {} by {:?} with approvals of {}",
        hex_prefix(&request.digest()),
        request.requester(),
        applied.approvers.join(", ")
    );
    println!(
        "tariff in force: {}",
        args.state.join(TARIFF_FILE).display()
    );
    println!(
        "re-locked as {}; hand out the new share files in {}",
        describe(&applied.locked.record),
        args.state.join(SHARES_DIR).display()
    );
    Ok(())
}

pub fn security(config: LockSecurityConfig) -> Result<()> {
    let n = config.holders;
    let degrees = security_degrees(n, &config.leak)?;
    println!(
        "sd(n, t, p) = P(fewer than t of n = {n} shares leak), each leaking with p = {}",
        config.leak
    );
    println!("{:>4}  {:<24}  1 - sd (t or more leak)", "t", "sd");
    let rows: Vec<u32> = match config.threshold {
        Some(t) => vec![t],
        None => (1..=n).collect(),
    };
    for t in rows {
        let degree = &degrees[t as usize - 1];
        println!(
            "{t:>4}  {:<24}  {}",
            degree.to_significant(15),
            degree.complement().to_significant(15)
        );
    }
    match smallest_threshold(&degrees, &config.target) {
        Some(t) => println!("smallest t with sd >= {}: {t}", config.target),
        None => println!("no t <= n = {n} reaches sd >= {}", config.target),
    }
    Ok(())
}

fn hex_prefix(digest: &[u8; 32]) -> String {
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}
