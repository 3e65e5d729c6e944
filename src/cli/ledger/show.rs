//! `review-sync ledger show [PLATFORM] REVIEW_ID`: one review, its body
//! (sent, or to send), every delivery attempt with the group and version it
//! carried, and every requeue.

use super::ShowFormat;
use super::output::json_line;
use super::rows::{attempt_json, opt_time, payload_value, row_fields, row_json};
use review_sync::escape::{escape, escape_lines};
use review_sync::ledger::{AttemptRow, Ledger, RequeueRow, ReviewRow, body_hash, format_time};
use std::io::Write;
use std::process::ExitCode;

/// `show [PLATFORM] REVIEW_ID`.
pub(super) fn show(
    ledger: &Ledger,
    review: &[String],
    format: ShowFormat,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    let (platform, review_id) = match review {
        [platform, review_id] => (platform.clone(), review_id.clone()),
        [review_id] => {
            let platforms = ledger.platforms_of(review_id)?;
            match platforms.as_slice() {
                [] => anyhow::bail!("no review {review_id} in the ledger (on any platform)"),
                [platform] => (platform.clone(), review_id.clone()),
                several => anyhow::bail!(
                    "review id {review_id} is ambiguous: it is on {}; give the platform: `ledger show PLATFORM {review_id}`",
                    several.join(", ")
                ),
            }
        }
        _ => anyhow::bail!("expected PLATFORM REVIEW_ID, or REVIEW_ID"),
    };
    let Some((row, attempts)) = ledger.show(&platform, &review_id)? else {
        anyhow::bail!("no review {platform} {review_id} in the ledger");
    };
    let purged = ledger.text_purged_at(&platform, &review_id)?;
    let requeues = ledger.requeues_of(&platform, &review_id)?;
    if format == ShowFormat::Json {
        writeln!(
            out,
            "{}",
            json_line(&show_json(&row, &attempts, &requeues, purged))
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    for (k, v) in row_fields(&row) {
        writeln!(out, "{k:<19} {}", escape(&v.unwrap_or_default()))?;
    }
    writeln!(
        out,
        "next_attempt_at     {}",
        opt_time(row.next_attempt_at).unwrap_or_default()
    )?;
    if let Some(t) = purged {
        writeln!(
            out,
            "text_purged_at      {} (retention removed {} from the body below)",
            format_time(t),
            review_sync::ledger::PURGED_FIELDS.join(", ")
        )?;
    }
    let pretty = serde_json::from_str::<serde_json::Value>(&row.payload)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or(row.payload.clone());
    writeln!(
        out,
        "\npayload ({}):\n{}\n{}",
        body_label(&row, &attempts, purged),
        escape(&row.payload),
        escape_lines(&pretty)
    )?;
    writeln!(out, "\nattempts ({}):", attempts.len())?;
    writeln!(
        out,
        "{:<24} {:>6} {:<10} {:<28} {:<36} {:<12} {:<38} {:>7} message",
        "attempted_at",
        "status",
        "outcome",
        "error_type",
        "sent to group",
        "content_hash",
        "request_id",
        "ms"
    )?;
    for a in &attempts {
        writeln!(
            out,
            "{:<24} {:>6} {:<10} {:<28} {:<36} {:<12} {:<38} {:>7} {}",
            format_time(a.attempted_at),
            a.http_status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "-".into()),
            escape(&a.outcome),
            escape(a.error_type.as_deref().unwrap_or_default()),
            escape(&group_label(
                a.group_id.as_deref(),
                a.group_external_ref.as_deref(),
                "(not recorded)"
            )),
            short_hash(&a.content_hash),
            escape(a.request_id.as_deref().unwrap_or_default()),
            a.duration_ms,
            escape(a.error_message.as_deref().unwrap_or_default())
        )?;
    }
    if !requeues.is_empty() {
        writeln!(out, "\nrequeues ({}):", requeues.len())?;
        writeln!(
            out,
            "{:<24} {:<8} {:<12} {:<12} group",
            "requeued_at", "command", "from_status", "content_hash"
        )?;
        for q in &requeues {
            writeln!(
                out,
                "{:<24} {:<8} {:<12} {:<12} {}",
                format_time(q.requeued_at),
                escape(&q.command),
                escape(&q.from_status),
                short_hash(&q.content_hash),
                escape(&group_label(
                    q.group_id.as_deref(),
                    q.group_external_ref.as_deref(),
                    "(none)"
                ))
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What the stored body is: sent (and delivered), sent but not delivered,
/// or not sent yet (new, held before any attempt, or regrouped by `retry`
/// since its last attempt). An attempt recorded before schema version 5
/// has no body hash; its version (`content_hash`) stands in for it.
fn body_label(
    row: &ReviewRow,
    attempts: &[AttemptRow],
    purged: Option<chrono::DateTime<chrono::Utc>>,
) -> &'static str {
    if purged.is_some() {
        return "body sent, its text since purged";
    }
    let hash = body_hash(&row.payload);
    let with_this_body = |a: &&AttemptRow| match &a.body_hash {
        Some(h) => *h == hash,
        None => a.content_hash == row.content_hash,
    };
    let mut sent = attempts.iter().filter(with_this_body).peekable();
    if sent.peek().is_none() {
        "body to send (not sent yet)"
    } else if sent.any(|a| a.outcome == "delivered") {
        "exact body sent"
    } else {
        "exact body sent, not delivered: see the attempts"
    }
}

/// `group_external_ref=X`, `group_id=X`, or `none` when neither is known.
fn group_label(group_id: Option<&str>, external_ref: Option<&str>, none: &str) -> String {
    match (external_ref, group_id) {
        (Some(r), _) => format!("group_external_ref={r}"),
        (None, Some(id)) => format!("group_id={id}"),
        (None, None) => none.to_owned(),
    }
}

/// The first 12 hex digits of a hash: enough to tell versions apart in a
/// table (JSON and exports carry the whole hash).
fn short_hash(hash: &str) -> String {
    escape(hash).chars().take(12).collect()
}

/// `show --format json`: the row, the body (parsed), every attempt and requeue.
fn show_json(
    row: &ReviewRow,
    attempts: &[AttemptRow],
    requeues: &[RequeueRow],
    purged: Option<chrono::DateTime<chrono::Utc>>,
) -> serde_json::Value {
    let mut m = match row_json(row, false) {
        serde_json::Value::Object(m) => m,
        _ => serde_json::Map::new(),
    };
    m.insert(
        "next_attempt_at".into(),
        opt_time(row.next_attempt_at).into(),
    );
    m.insert("text_purged_at".into(), opt_time(purged).into());
    m.insert("payload".into(), payload_value(&row.payload));
    m.insert(
        "payload_state".into(),
        body_label(row, attempts, purged).into(),
    );
    let attempts: Vec<serde_json::Value> = attempts.iter().map(attempt_json).collect();
    m.insert("attempts".into(), attempts.into());
    let requeues: Vec<serde_json::Value> = requeues
        .iter()
        .map(|q| {
            serde_json::json!({
                "requeued_at": format_time(q.requeued_at),
                "command": q.command,
                "from_status": q.from_status,
                "content_hash": q.content_hash,
                "group_id": q.group_id,
                "group_external_ref": q.group_external_ref,
            })
        })
        .collect();
    m.insert("requeues".into(), requeues.into());
    serde_json::Value::Object(m)
}
