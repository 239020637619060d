//! Draws the view: a title line, the containers, the job queue and the vectors side by side,
//! Redis and the host, the followed logs when asked for, and the keys; help and confirmations
//! over the panes. Without colour (NO_COLOR, --once piped) the same layout in plain text.

use std::time::Instant;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Clear, Paragraph, Row, Sparkline, Table, Wrap};

use super::app::{App, Overlay, Pane};
use crate::output::table::age;

const KEYS: &str =
    "↑↓ select  p pause/unpause  s safe-stop  r reset stuck  l logs  c check-data  ? help  q quit";

pub fn draw(frame: &mut Frame, app: &App) {
    let area = frame.area();
    let containers = app.listed().len().max(1) as u16 + 3;
    let logs = if app.logs.is_some() {
        Constraint::Percentage(30)
    } else {
        Constraint::Length(0)
    };
    // The job queue and the vectors as tall as their content; Redis and the host take the rest.
    let job_types = match &app.jobs {
        Some(Pane { value: Ok(j), .. }) => j.by_type.len().max(1),
        _ => 1,
    };
    let collections = match &app.vectors {
        Some(Pane { value: Ok(v), .. }) => v.collections.len().max(1) + 1 + v.compared.len(),
        _ => 1,
    };
    let middle = (job_types + 7).max(collections + 2).max(8) as u16;
    let [title, top, middle, bottom, logs_area, keys] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Max(containers),
        Constraint::Length(middle),
        Constraint::Min(5),
        logs,
        Constraint::Length(1),
    ])
    .areas(area);
    frame.render_widget(Paragraph::new(title_line(app)), title);
    draw_containers(frame, app, top);
    let [jobs, vectors] =
        Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(middle);
    draw_jobs(frame, app, jobs);
    draw_vectors(frame, app, vectors);
    let [redis, host] =
        Layout::horizontal([Constraint::Percentage(40), Constraint::Percentage(60)]).areas(bottom);
    // Redis's three lines, the STT spend under them.
    let [redis, stt] = Layout::vertical([Constraint::Length(5), Constraint::Min(4)]).areas(redis);
    draw_redis(frame, app, redis);
    draw_stt(frame, app, stt);
    draw_host(frame, app, host);
    if app.logs.is_some() {
        draw_logs(frame, app, logs_area);
    }
    let status = match &app.message {
        Some(m) => m.clone(),
        None => KEYS.to_string(),
    };
    frame.render_widget(Paragraph::new(status).style(dim(app)), keys);
    match &app.overlay {
        Overlay::None => {}
        Overlay::Help => popup(frame, app, "help", &help_text(app)),
        Overlay::Confirm(action) => popup(
            frame,
            app,
            "confirm",
            &format!("{}\n\ny: yes   any other key: no", action.question()),
        ),
    }
}

fn title_line(app: &App) -> Line<'static> {
    let target = app
        .target
        .as_deref()
        .map(|t| format!(" [{t}]"))
        .unwrap_or_default();
    Line::from(vec![
        Span::styled(format!("opsh top{target}"), bold(app)),
        Span::raw(format!(
            "  every {}  {}",
            crate::duration::format(app.refresh),
            chrono::Local::now().format("%H:%M:%S")
        )),
    ])
}

fn style(app: &App, s: Style) -> Style {
    if app.colour { s } else { Style::default() }
}

fn bold(app: &App) -> Style {
    style(app, Style::default().add_modifier(Modifier::BOLD))
}

fn dim(app: &App) -> Style {
    style(app, Style::default().fg(Color::DarkGray))
}

fn colour(app: &App, c: Color) -> Style {
    style(app, Style::default().fg(c))
}

fn block(title: &str) -> Block<'_> {
    Block::default()
        .borders(Borders::ALL)
        .title(format!(" {title} "))
}

/// A pane that could not be read says why (or that it is still reading).
fn failed<T>(
    frame: &mut Frame,
    app: &App,
    pane: Option<&Pane<T>>,
    title: &str,
    area: Rect,
) -> bool {
    let text = match pane {
        None => "reading…".to_string(),
        Some(Pane {
            value: Err(why),
            at,
            ..
        }) => {
            format!(
                "unavailable: {why}\n(tried {} ago)",
                age(at.elapsed().as_secs_f64())
            )
        }
        Some(_) => return false,
    };
    let style = if pane.is_some() {
        colour(app, Color::Red)
    } else {
        dim(app)
    };
    frame.render_widget(
        Paragraph::new(text)
            .style(style)
            .wrap(Wrap { trim: true })
            .block(block(title)),
        area,
    );
    true
}

fn draw_containers(frame: &mut Frame, app: &App, area: Rect) {
    if failed(frame, app, app.containers.as_ref(), "containers", area) {
        return;
    }
    let selected = app.selected.as_deref();
    let rows: Vec<Row> = app
        .listed()
        .iter()
        .map(|c| {
            let state_colour = match c.state.as_str() {
                "running" => Color::Green,
                "paused" | "restarting" => Color::Yellow,
                _ => Color::Red,
            };
            let health = c.health.clone().unwrap_or_else(|| "-".into());
            let health_colour = match health.as_str() {
                "healthy" | "-" => Color::Reset,
                "starting" => Color::Yellow,
                _ => Color::Red,
            };
            let mark = if Some(c.service.as_str()) == selected {
                "▶"
            } else {
                " "
            };
            let row = Row::new(vec![
                Cell::from(format!("{mark}{}", c.service)),
                Cell::from(c.state.clone()).style(colour(app, state_colour)),
                Cell::from(health).style(colour(app, health_colour)),
                Cell::from(
                    c.cpu_percent
                        .map(|p| format!("{p:.1}%"))
                        .unwrap_or_default(),
                ),
                Cell::from(c.memory_used.map(bytes).unwrap_or_default()),
                Cell::from(c.uptime_seconds.map(|s| age(s as f64)).unwrap_or_default()),
                Cell::from(c.restarts.map(|r| r.to_string()).unwrap_or_default()),
            ]);
            if Some(c.service.as_str()) == selected {
                row.style(style(
                    app,
                    Style::default().add_modifier(Modifier::REVERSED),
                ))
            } else {
                row
            }
        })
        .collect();
    let empty = rows.is_empty();
    let table = Table::new(
        rows,
        [
            Constraint::Min(22),
            Constraint::Length(10),
            Constraint::Length(10),
            Constraint::Length(7),
            Constraint::Length(9),
            Constraint::Length(8),
            Constraint::Length(8),
        ],
    )
    .header(
        Row::new([
            "service", "state", "health", "cpu", "memory", "uptime", "restarts",
        ])
        .style(bold(app)),
    )
    .block(block("containers"));
    frame.render_widget(table, area);
    if empty {
        let inner = Rect {
            y: area.y + 2,
            height: 1,
            ..area.inner(ratatui::layout::Margin::new(1, 0))
        };
        frame.render_widget(
            Paragraph::new("no container of the Compose project").style(dim(app)),
            inner,
        );
    }
}

fn draw_jobs(frame: &mut Frame, app: &App, area: Rect) {
    if failed(frame, app, app.jobs.as_ref(), "job queue", area) {
        return;
    }
    let Some(Pane {
        value: Ok(jobs), ..
    }) = &app.jobs
    else {
        return;
    };
    let outer = block("job queue");
    let inner = outer.inner(area);
    frame.render_widget(outer, area);
    let statuses = ["pending", "processing", "completed", "failed"];
    let mut rows: Vec<Row> = jobs
        .by_type
        .iter()
        .map(|(job_type, by)| {
            let mut cells = vec![Cell::from(job_type.clone())];
            cells.extend(statuses.iter().map(|s| {
                let n = by.get(*s).copied().unwrap_or(0);
                let c = Cell::from(n.to_string());
                if *s == "failed" && n > 0 {
                    c.style(colour(app, Color::Red))
                } else {
                    c
                }
            }));
            Row::new(cells)
        })
        .collect();
    if rows.is_empty() {
        rows.push(Row::new(["no jobs"]));
    }
    let n = rows.len() as u16;
    let [table_area, lines, spark] = Layout::vertical([
        Constraint::Length(n + 1),
        Constraint::Length(2),
        Constraint::Min(1),
    ])
    .areas(inner);
    let mut header = vec!["job type"];
    header.extend(statuses);
    frame.render_widget(
        Table::new(
            rows,
            [
                Constraint::Min(18),
                Constraint::Length(8),
                Constraint::Length(10),
                Constraint::Length(9),
                Constraint::Length(7),
            ],
        )
        .header(Row::new(header).style(bold(app))),
        table_area,
    );
    let oldest = match &jobs.oldest {
        Some((id, job_type, secs)) => format!(
            "oldest processing: job {id} ({job_type}), {}",
            age(*secs as f64)
        ),
        None => "oldest processing: none".into(),
    };
    let stuck_style = if jobs.stuck > 0 {
        colour(app, Color::Yellow)
    } else {
        Style::default()
    };
    frame.render_widget(
        Paragraph::new(vec![
            Line::from(oldest),
            Line::styled(
                format!(
                    "stuck (processing > {}): {}",
                    crate::duration::format(jobs.stuck_after),
                    jobs.stuck
                ),
                stuck_style,
            ),
        ]),
        lines,
    );
    let total: u64 = jobs.finished_per_minute.iter().sum();
    let [label, line] =
        Layout::horizontal([Constraint::Length(28), Constraint::Min(1)]).areas(spark);
    frame.render_widget(
        Paragraph::new(format!("finished/min, {}m: {total}", super::data::MINUTES)),
        label,
    );
    frame.render_widget(
        Sparkline::default()
            .data(&jobs.finished_per_minute)
            .style(colour(app, Color::Cyan)),
        line,
    );
}

fn draw_vectors(frame: &mut Frame, app: &App, area: Rect) {
    if failed(frame, app, app.vectors.as_ref(), "vectors", area) {
        return;
    }
    let Some(Pane { value: Ok(v), .. }) = &app.vectors else {
        return;
    };
    let mut lines = Vec::new();
    for c in &v.collections {
        let status = if c.status.eq_ignore_ascii_case("green") {
            colour(app, Color::Green)
        } else {
            colour(app, Color::Yellow)
        };
        lines.push(Line::from(vec![
            Span::raw(format!("{:<20} {:>9} points  ", c.name, c.points)),
            Span::styled(c.status.to_lowercase(), status),
        ]));
    }
    if v.collections.is_empty() {
        lines.push(Line::from("no collection"));
    }
    if let Some(last) = &v.last_check {
        let ago = age((chrono::Utc::now() - last.at).num_seconds() as f64);
        let c = if last.outcome == "ok" {
            Color::Green
        } else if last.outcome.starts_with("critical") {
            Color::Red
        } else {
            Color::Yellow
        };
        lines.push(Line::from(vec![
            Span::styled(format!("{} {ago} ago: ", last.by), bold(app)),
            Span::styled(last.outcome.clone(), colour(app, c)),
        ]));
    } else {
        draw_compared(app, v, &mut lines);
    }
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(block("vectors")),
        area,
    );
}

/// The fallback when no check is recorded: the light count comparison, labelled as such.
fn draw_compared(app: &App, v: &super::data::Vectors, lines: &mut Vec<Line<'static>>) {
    let ago = v
        .compared_at
        .map(|at| age(Instant::now().duration_since(at).as_secs_f64()))
        .unwrap_or_default();
    lines.push(Line::from(format!("no check-data recorded; counts ({ago} ago):")).style(bold(app)));
    for (name, expected) in &v.compared {
        let points = v
            .collections
            .iter()
            .find(|c| &c.name == name)
            .map_or(0, |c| c.points);
        let line = match expected {
            Ok(n) if u64::try_from(*n).ok() == Some(points) => Line::styled(
                format!("  {name}: {points} = {n} rows, match"),
                colour(app, Color::Green),
            ),
            Ok(n) => Line::styled(
                format!("  {name}: {points} points, {n} rows, differ (opsh check-data)"),
                colour(app, Color::Yellow),
            ),
            Err(why) => Line::styled(
                format!("  {name}: not compared: {why}"),
                colour(app, Color::Red),
            ),
        };
        lines.push(line);
    }
}

fn draw_redis(frame: &mut Frame, app: &App, area: Rect) {
    if failed(frame, app, app.redis.as_ref(), "redis", area) {
        return;
    }
    let Some(Pane { value: Ok(r), .. }) = &app.redis else {
        return;
    };
    let limit = if r.maxmemory > 0 {
        format!(" of {}", bytes(r.maxmemory))
    } else {
        " (no limit)".into()
    };
    frame.render_widget(
        Paragraph::new(vec![
            Line::from(format!("memory {}{limit}", bytes(r.used_memory))),
            Line::from(format!("keys   {}", r.db_keys)),
            Line::from(format!("server {}", r.version)),
        ])
        .block(block("redis")),
        area,
    );
}

fn draw_stt(frame: &mut Frame, app: &App, area: Rect) {
    if failed(frame, app, app.stt.as_ref(), "stt spend", area) {
        return;
    }
    let Some(Pane { value: Ok(s), .. }) = &app.stt else {
        return;
    };
    let level = |spent: f64, limit: f64| {
        let c = if limit > 0.0 && spent >= limit {
            Color::Red
        } else if limit > 0.0 && spent >= limit * 0.8 {
            Color::Yellow
        } else {
            Color::Reset
        };
        colour(app, c)
    };
    let money = |spent: f64, limit: f64, runs: i64| {
        let percent = if limit > 0.0 {
            format!(" ({:.0}%)", spent * 100.0 / limit)
        } else {
            String::new()
        };
        format!(
            "${spent:.2} of ${limit:.2}{percent}, {}",
            crate::text::count(runs, "run", None)
        )
    };
    let mut lines = Vec::new();
    match &s.spend {
        Ok(None) => lines.push(Line::styled(
            "not in use yet: no stt_cost_tracking",
            dim(app),
        )),
        Ok(Some(x)) => {
            lines.push(Line::styled(
                format!(
                    "today {}",
                    money(x.today_usd, x.today_limit_usd, x.today_runs)
                ),
                level(x.today_usd, x.today_limit_usd),
            ));
            lines.push(Line::styled(
                format!(
                    "month {}",
                    money(x.month_usd, x.month_limit_usd, x.month_runs)
                ),
                level(x.month_usd, x.month_limit_usd),
            ));
        }
        Err(why) => lines.push(Line::styled(
            format!("spend unavailable: {why}"),
            colour(app, Color::Red),
        )),
    }
    match &s.approvals {
        Ok(None) => lines.push(Line::from("approvals: none asked yet")),
        Ok(Some(a)) if a.waiting == 0 => lines.push(Line::from("approvals: none waiting")),
        Ok(Some(a)) => {
            let oldest = a
                .oldest_seconds
                .map(|s| format!(", oldest {}", age(s as f64)))
                .unwrap_or_default();
            let timed_out = if a.timed_out > 0 {
                format!(", {} timed out", a.timed_out)
            } else {
                String::new()
            };
            lines.push(Line::styled(
                format!(
                    "{} waiting (${:.2}){oldest}{timed_out}",
                    crate::text::count(a.waiting as i64, "approval", None),
                    a.estimated_usd
                ),
                colour(app, Color::Yellow),
            ));
        }
        Err(why) => lines.push(Line::styled(
            format!("approvals unavailable: {why}"),
            colour(app, Color::Red),
        )),
    }
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: true })
            .block(block("stt spend")),
        area,
    );
}

fn draw_host(frame: &mut Frame, app: &App, area: Rect) {
    if failed(frame, app, app.host.as_ref(), "host", area) {
        return;
    }
    let Some(Pane { value: Ok(h), .. }) = &app.host else {
        return;
    };
    let mut lines = vec![Line::from(format!(
        "memory {} of {} ({}), swap {} of {}",
        bytes(h.memory_used),
        bytes(h.memory_total),
        percent(h.memory_used, h.memory_total),
        bytes(h.swap_used),
        bytes(h.swap_total)
    ))];
    for (mount, used, total) in &h.disks {
        let p = if *total > 0 {
            *used as f64 * 100.0 / *total as f64
        } else {
            0.0
        };
        let c = if p >= 90.0 {
            Color::Red
        } else if p >= 80.0 {
            Color::Yellow
        } else {
            Color::Reset
        };
        lines.push(Line::styled(
            format!(
                "disk {mount}: {} of {} ({p:.0}%)",
                bytes(*used),
                bytes(*total)
            ),
            colour(app, c),
        ));
    }
    frame.render_widget(Paragraph::new(lines).block(block("host")), area);
}

fn draw_logs(frame: &mut Frame, app: &App, area: Rect) {
    let Some(logs) = &app.logs else {
        return;
    };
    let (state, state_style) = match &logs.state {
        Ok(s) => (s.clone(), Style::default()),
        Err(why) => (why.clone(), colour(app, Color::Red)),
    };
    let height = area.height.saturating_sub(2) as usize;
    let mut text: Vec<Line> = logs
        .lines
        .iter()
        .skip(logs.lines.len().saturating_sub(height))
        .map(|l| Line::from(l.clone()))
        .collect();
    if text.is_empty() {
        text.push(Line::styled("no lines yet", dim(app)));
    }
    let title = Line::from(vec![
        Span::raw(format!(" logs of {} (l closes): ", logs.service)),
        Span::styled(state, state_style),
        Span::raw(" "),
    ]);
    frame.render_widget(
        Paragraph::new(text).block(Block::default().borders(Borders::ALL).title(title)),
        area,
    );
}

fn help_text(app: &App) -> String {
    format!(
        "↑/↓ or j/k  select a container\n\
         p  pause the selected service, or unpause it when paused\n\
         s  safe-stop the stack (opsh safe-stop)\n\
         r  reset jobs processing for more than {} (opsh reset-stuck-jobs)\n\
         l  follow the selected service's logs in a pane (l again closes it)\n\
         c  run check-data\n\
         ?  this help      q or Ctrl-C  quit\n\n\
         Every action asks first and runs the bundled procedure, so its checks and audit\n\
         record are the same as on the command line. Panes refresh every {} (top.refresh).",
        app.stuck_after,
        crate::duration::format(app.refresh)
    )
}

fn popup(frame: &mut Frame, app: &App, title: &str, text: &str) {
    let area = frame.area();
    let width = area.width.saturating_sub(4).min(90);
    let height = (text.lines().count() as u16 + 2).min(area.height);
    let rect = Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    };
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(text.to_string())
            .wrap(Wrap { trim: false })
            .block(block(title).border_style(colour(app, Color::Yellow))),
        rect,
    );
}

/// Bytes as "1.5 GiB".
pub fn bytes(n: i64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v.abs() >= 1024.0 && unit < units.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", units[unit])
    }
}

fn percent(part: i64, whole: i64) -> String {
    if whole <= 0 {
        return "-".into();
    }
    format!("{:.0}%", part as f64 * 100.0 / whole as f64)
}
